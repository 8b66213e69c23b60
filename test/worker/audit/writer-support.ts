// What the AuditWriter tests share: events of each class, a D1 binding that records and can hold
// back statements, a linger the test controls, and reading rows back.
import { env } from "cloudflare:test";
import { expect } from "vitest";
import { buildAuditEvent, type AuditEvent } from "../../../src/audit/audit-event";
import type { AuditWriter } from "../../../src/audit/audit-writer";
import type { Env } from "../../../src/config";
import { AUDIT_JUNK_ROWS_PER_SECOND } from "../../../src/limits";

/** A verified caller's credential issuance (priority: `issuer` is set only for a verified token). */
export const issuance = (overrides: Partial<AuditEvent> = {}): AuditEvent => ({
  ...buildAuditEvent(
    { route: "POST /v1/credentials/:target", target: "aws-readonly" },
    { requestId: crypto.randomUUID(), status: 200, now: Date.now() },
  ),
  issuer: "corp-gitlab",
  project_path: "platform/infra",
  ...overrides,
});

/** A refused unverified token (junk). */
export const refusal = (overrides: Partial<AuditEvent> = {}): AuditEvent => ({
  ...buildAuditEvent(
    { route: "POST /v1/credentials/:target" },
    { requestId: crypto.randomUUID(), status: 401, errorCode: "token_malformed", now: Date.now() },
  ),
  ...overrides,
});

export interface CountingDb {
  env: Env;
  /** The rows of every statement run, in the order they started. */
  statements: Record<string, unknown>[][];
  inFlight: number;
  maxInFlight: number;
  /** Lets the statements held so far (and later ones) run. */
  release(): void;
}

/**
 * A D1 binding over the real one that records each insert's rows. hold: "none" runs statements at once;
 * "until-released" holds them until release(); a number holds that many first statements forever (as
 * if their request were gone) and runs the rest.
 */
export function countingDb(hold: "none" | "until-released" | number = "none"): CountingDb {
  let release: () => void = () => {};
  let gate: Promise<void> | undefined =
    hold === "until-released" ? new Promise((resolve) => (release = resolve)) : undefined;
  const state: CountingDb = {
    env: undefined as unknown as Env,
    statements: [],
    inFlight: 0,
    maxInFlight: 0,
    release: () => {
      gate = undefined;
      release();
    },
  };
  const db = {
    prepare: (sql: string) => {
      const statement = env.DB.prepare(sql);
      return {
        bind: (...values: unknown[]) => {
          const bound = statement.bind(...values);
          return {
            run: async () => {
              state.statements.push(JSON.parse(values[0] as string) as Record<string, unknown>[]);
              state.inFlight++;
              state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
              try {
                if (typeof hold === "number" && state.statements.length <= hold) await new Promise<never>(() => {});
                if (gate) await gate;
                return await bound.run();
              } finally {
                state.inFlight--;
              }
            },
          };
        },
      };
    },
  } as unknown as D1Database;
  state.env = { ...env, DB: db } as Env;
  return state;
}

/** A linger the test ends by hand (or never). */
export function manualLinger() {
  const waiting: (() => void)[] = [];
  return {
    sleep: () => new Promise<void>((resolve) => void waiting.push(resolve)),
    get waiting() {
      return waiting.length;
    },
    end: () => {
      for (const resolve of waiting.splice(0)) resolve();
    },
  };
}

/** A linger over at the next turn of the event loop: tests need not wait 250 ms. */
export const briefLinger = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export async function waitFor(condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 100 && !condition(); attempt++)
    await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition()).toBe(true);
}

export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
  ]);
}

export async function storedEvents(requestIds: string[]): Promise<AuditEvent[]> {
  const { results } = await env.DB.prepare(
    `SELECT * FROM audit_events WHERE request_id IN (SELECT value FROM json_each(?)) ORDER BY id`,
  )
    .bind(JSON.stringify(requestIds))
    .all<AuditEvent & { id: number }>();
  return results.map(({ id: _id, ...event }) => event);
}

/** Every row of a route (tests give their floods a route of their own), summaries included. */
export async function rowsOfRoute(route: string): Promise<AuditEvent[]> {
  const { results } = await env.DB.prepare("SELECT * FROM audit_events WHERE route = ? ORDER BY id")
    .bind(route)
    .all<AuditEvent & { id: number }>();
  return results.map(({ id: _id, ...event }) => event);
}

/**
 * A clock the test moves: `deps` for the writer, `sleep` for its linger (moves the clock by the
 * linger's length, then yields a turn of the event loop), `nextSecond()` to step to the next whole second.
 */
export function testClock(startMs = Date.parse("2026-11-24T10:00:00Z")) {
  const clock = {
    nowMs: startMs,
    deps: { now: () => clock.nowMs },
    sleep: async (ms: number) => {
      clock.nowMs += ms;
      await briefLinger();
    },
    nextSecond: () => void (clock.nowMs = (Math.floor(clock.nowMs / 1000) + 1) * 1000),
  };
  return clock;
}

/** Writes junk within the rate budget (AUDIT_JUNK_ROWS_PER_SECOND a second, stepping the clock a second each time), as a slow flood would. */
export function writePaced(
  writer: AuditWriter,
  env: Env,
  events: AuditEvent[],
  clock: ReturnType<typeof testClock>,
): Promise<void>[] {
  return events.map((event, i) => {
    if (i % AUDIT_JUNK_ROWS_PER_SECOND === 0) clock.nextSecond();
    return writer.write(env, event);
  });
}

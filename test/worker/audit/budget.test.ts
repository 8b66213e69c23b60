// The junk rate budget (issue 30): junk beyond AUDIT_JUNK_ROWS_PER_SECOND rows a second folds into
// per-second summary rows whatever D1's speed, a daily cap counts the surplus without storing it, a
// verified caller over its limit folds per caller, and request log lines fold likewise. Clocks are
// injected: nothing here sleeps.
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../../src/app";
import { JunkBudget } from "../../../src/audit/junk-budget";
import type { AuditEvent } from "../../../src/audit/audit-event";
import { AuditWriter } from "../../../src/audit/audit-writer";
import {
  AUDIT_JUNK_ROWS_PER_SECOND,
  AUDIT_MAX_JUNK_ROWS_PER_DAY,
  LOG_JUNK_LINES_PER_SECOND,
  MAX_AUDIT_QUEUED_JUNK_EVENTS,
  TIME,
} from "../../../src/limits";
import { RequestLog } from "../../../src/log";
import { createServices } from "../../../src/services";
import { countingDb, issuance, refusal, rowsOfRoute, storedEvents, testClock } from "./writer-support";

afterEach(() => vi.restoreAllMocks());

const CODES = [
  { error_code: "token_malformed", status: 401 },
  { error_code: "issuer_unknown", status: 401 },
  { error_code: "key_unknown", status: 401 },
];

function junk(count: number, route: string): AuditEvent[] {
  return Array.from({ length: count }, (_, i) => refusal({ route, ...CODES[i % CODES.length] }));
}

/** A verified caller's refusal for being over its project's rate limit. */
function overLimit(project: string, route: string): AuditEvent {
  return refusal({
    route,
    issuer: "corp-gitlab",
    project_id: project,
    project_path: `platform/p${project}`,
    status: 429,
    error_code: "rate_limited",
  });
}

const sumFolded = (rows: AuditEvent[]) => rows.reduce((sum, row) => sum + (row.folded_count ?? 1), 0);

describe("the junk rate budget", () => {
  it(`stores at most ${AUDIT_JUNK_ROWS_PER_SECOND} junk rows of their own a second, the rest in per-second summaries, with a healthy D1`, async () => {
    const db = countingDb("none");
    const clock = testClock();
    const writer = new AuditWriter(clock.deps, clock.sleep);
    const route = `POST /v1/flood/${crypto.randomUUID()}`;
    for (let second = 0; second < 3; second++) {
      clock.nextSecond();
      await Promise.all(junk(100, route).map((event) => writer.write(db.env, event)));
    }
    const rows = await rowsOfRoute(route);
    const own = rows.filter((row) => row.folded_count === null);
    const summaries = rows.filter((row) => row.folded_count !== null);
    expect(own).toHaveLength(3 * AUDIT_JUNK_ROWS_PER_SECOND);
    expect(summaries).toHaveLength(3 * CODES.length); // one per code and second
    expect(sumFolded(rows)).toBe(300);
    expect(writer.status()).toMatchObject({
      queued_events: 0,
      folded_refusals_unwritten: 0,
      junk_rows_today: 3 * (AUDIT_JUNK_ROWS_PER_SECOND + CODES.length),
    });
  });

  it("caps junk rows a day: the surplus is counted, not stored, and the next day starts afresh", async () => {
    const warnings: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: string) => void warnings.push(line));
    const db = countingDb("none");
    const clock = testClock();
    const writer = new AuditWriter(clock.deps, clock.sleep, new JunkBudget(20, 50));
    const route = `POST /v1/flood/${crypto.randomUUID()}`;
    for (let second = 0; second < 10; second++) {
      clock.nextSecond();
      await Promise.all(junk(30, route).map((event) => writer.write(db.env, event)));
    }
    const rows = await rowsOfRoute(route);
    const status = writer.status();
    // 20 + 3 summaries, 20 + 3, then 4 rows of the third second: 50. A window's summaries may end the day just over it.
    expect(rows.length).toBeLessThanOrEqual(50 + CODES.length);
    expect(status.junk_not_stored_over_daily_cap_this_isolate).toBeGreaterThan(200);
    expect(sumFolded(rows) + status.junk_not_stored_over_daily_cap_this_isolate).toBe(300);
    expect(warnings.map((line) => JSON.parse(line).event)).toEqual(["audit_junk_daily_cap"]);

    clock.nowMs = (Math.floor(clock.nowMs / (TIME.DAY * 1000)) + 1) * TIME.DAY * 1000; // the next UTC day
    await writer.write(db.env, junk(1, route)[0]!);
    expect(await rowsOfRoute(route)).toHaveLength(rows.length + 1);
  });

  it(`admits ${AUDIT_MAX_JUNK_ROWS_PER_DAY} rows a UTC day at ${AUDIT_JUNK_ROWS_PER_SECOND} a second, then none until the next day`, () => {
    const budget = new JunkBudget(AUDIT_JUNK_ROWS_PER_SECOND, AUDIT_MAX_JUNK_ROWS_PER_DAY);
    const day = Date.parse("2026-11-24T00:00:00Z");
    let admitted = 0;
    for (let second = 0; second < 86_400 && !budget.dayFull(day + second * 1000); second++) {
      for (let i = 0; i < AUDIT_JUNK_ROWS_PER_SECOND + 5; i++) if (budget.admitRow(day + second * 1000)) admitted++;
    }
    expect(admitted).toBe(AUDIT_MAX_JUNK_ROWS_PER_DAY);
    expect(budget.admitRow(day + 86_399_000)).toBe(false);
    expect(budget.admitRow(day + 86_400_000)).toBe(true);
  });
});

describe("a verified caller over its rate limit", () => {
  it("is folded per caller (issuer + project) and never displaces other callers' issuances", async () => {
    const db = countingDb("none");
    const clock = testClock();
    const writer = new AuditWriter(clock.deps, clock.sleep);
    const route = `POST /v1/flood/${crypto.randomUUID()}`;
    const others: AuditEvent[] = [];
    const writes: Promise<void>[] = [];
    clock.nextSecond();
    for (let i = 0; i < 1_000; i++) {
      writes.push(writer.write(db.env, overLimit("1", route)));
      if (i % 10 === 0) writes.push(writer.write(db.env, overLimit("2", route)));
      if (i % 20 === 0) {
        const issued = issuance({ route, project_id: String(100 + i), project_path: `platform/q${i}` });
        others.push(issued);
        writes.push(writer.write(db.env, issued));
      }
    }
    await Promise.all(writes);
    expect(await storedEvents(others.map((e) => e.request_id))).toEqual(others);
    const summaries = (await rowsOfRoute(route)).filter((row) => row.folded_count !== null);
    const own = (await rowsOfRoute(route)).filter(
      (row) => row.folded_count === null && row.error_code === "rate_limited",
    );
    expect(own).toHaveLength(AUDIT_JUNK_ROWS_PER_SECOND);
    expect(
      summaries
        .map(({ issuer, project_id, project_path, error_code }) => ({ issuer, project_id, project_path, error_code }))
        .sort((a, b) => a.project_id!.localeCompare(b.project_id!)),
    ).toEqual([
      { issuer: "corp-gitlab", project_id: "1", project_path: "platform/p1", error_code: "rate_limited" },
      { issuer: "corp-gitlab", project_id: "2", project_path: "platform/p2", error_code: "rate_limited" },
    ]);
    expect(own.length + summaries.reduce((sum, row) => sum + row.folded_count!, 0)).toBe(1_000 + 100);
  });

  it(`holds at most the junk share (${MAX_AUDIT_QUEUED_JUNK_EVENTS} events) of a stalled queue, which gives way to other callers`, () => {
    const db = countingDb("until-released");
    const clock = testClock();
    const writer = new AuditWriter(
      clock.deps,
      () => new Promise(() => {}),
      new JunkBudget(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY),
    );
    const route = `POST /v1/flood/${crypto.randomUUID()}`;
    for (let i = 0; i < 5_000; i++) void writer.write(db.env, overLimit("1", route));
    expect(writer.status().queued_junk_events).toBe(MAX_AUDIT_QUEUED_JUNK_EVENTS);
    // 600 of that share are in the three inserts D1 holds; the 400 still waiting can give way.
    for (let i = 0; i < 9_200; i++) void writer.write(db.env, issuance());
    expect(writer.status()).toMatchObject({
      queued_events: 10_000,
      queued_junk_events: 800,
      logged_over_cap_this_isolate: 0,
    });
  });
});

describe("request log lines", () => {
  it(`log at most ${LOG_JUNK_LINES_PER_SECOND} junk lines a second and count the rest in one requests_folded line per status and code`, () => {
    const lines: Record<string, any>[] = [];
    vi.spyOn(console, "log").mockImplementation((line: string) => void lines.push(JSON.parse(line)));
    let nowMs = Date.parse("2026-11-24T10:00:00Z");
    const requestLog = new RequestLog(() => nowMs, LOG_JUNK_LINES_PER_SECOND);
    for (let i = 0; i < 100; i++)
      requestLog.write("info", { status: 401, code: i % 2 ? "token_malformed" : "issuer_unknown" }, true);
    for (let i = 0; i < 5; i++) requestLog.write("info", { status: 200 }, false); // authenticated: never folded
    expect(lines.filter((l) => l.event === "request")).toHaveLength(LOG_JUNK_LINES_PER_SECOND + 5);
    expect(requestLog.status()).toMatchObject({
      folded_lines_this_isolate: 100 - LOG_JUNK_LINES_PER_SECOND,
      folded_lines_unlogged: 100 - LOG_JUNK_LINES_PER_SECOND,
    });
    nowMs += 1000;
    requestLog.write("info", { status: 401, code: "token_malformed" }, true);
    const folded = lines.filter((l) => l.event === "requests_folded");
    expect(folded.map(({ status, code, count, second }) => ({ status, code, count, second }))).toEqual([
      { status: 401, code: "issuer_unknown", count: 40, second: "2026-11-24T10:00:00.000Z" },
      { status: 401, code: "token_malformed", count: 40, second: "2026-11-24T10:00:00.000Z" },
    ]);
    expect(lines.at(-1)).toMatchObject({ event: "request", code: "token_malformed" });
    expect(requestLog.status().folded_lines_unlogged).toBe(0);
  });

  it("are folded by the Worker for callers who did not authenticate", async () => {
    const lines: Record<string, any>[] = [];
    vi.spyOn(console, "log").mockImplementation((line: string) => void lines.push(JSON.parse(line)));
    const nowMs = Date.parse("2026-11-24T10:00:00Z");
    const deps = { ...(await import("../../../src/deps")).defaultDeps, now: () => nowMs };
    const services = createServices(deps);
    const app = createApp(deps, services);
    for (let i = 0; i < 40; i++)
      await app.request(
        "https://gatepass.test/v1/no-such-endpoint",
        { headers: { Authorization: "Bearer not-a-jwt" } },
        env,
      );
    expect(lines.filter((l) => l.event === "request")).toHaveLength(LOG_JUNK_LINES_PER_SECOND);
    expect(lines.filter((l) => l.event === "request").every((l) => l.code === "not_found")).toBe(true);
    expect(services.requestLog.status().folded_lines_this_isolate).toBe(40 - LOG_JUNK_LINES_PER_SECOND);
  });
});

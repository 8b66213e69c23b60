// The audit queue under a flood: bounded memory, junk folded into counted summary rows, verified
// callers' events first, full batches without linger, overlapping inserts (src/audit/audit-writer.ts).
import { SELF, env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { auditClassOf, buildAuditEvent, type AuditEvent } from "../../../src/audit/audit-event";
import { RefusalFolder } from "../../../src/audit/refusal-fold";
import { memoryBytes } from "../../../src/audit/event-queue";
import { AuditWriter } from "../../../src/audit/audit-writer";
import type { Env } from "../../../src/config";
import { defaultDeps } from "../../../src/deps";
import {
  AUDIT_FOLD_WINDOW_MS,
  AUDIT_MAX_INSERTS_IN_FLIGHT,
  MAX_AUDIT_BATCH_EVENTS,
  MAX_AUDIT_QUEUE_BYTES,
  MAX_AUDIT_QUEUE_EVENTS,
  MAX_AUDIT_QUEUED_JUNK_BYTES,
  MAX_AUDIT_QUEUED_JUNK_EVENTS,
} from "../../../src/limits";
import { auditEventsFor } from "./events";
import { JunkBudget } from "../../../src/audit/junk-budget";
import {
  briefLinger,
  countingDb,
  issuance,
  manualLinger,
  refusal,
  rowsOfRoute,
  storedEvents,
  testClock,
  waitFor,
} from "./writer-support";

afterEach(() => vi.restoreAllMocks());

/** The queue's share and folding, on their own: no per-second or daily budget (tested in "the junk rate budget"). */
const noRateBudget = () => new JunkBudget(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);

const CODES = [
  { error_code: "token_malformed", status: 401 },
  { error_code: "issuer_unknown", status: 401 },
  { error_code: "jwks_unavailable", status: 503, decision: "error" as const },
];

/** Refusals of a flood on a route of its own, one millisecond apart, cycling through CODES. */
function flood(
  count: number,
  route = `POST /v1/flood/${crypto.randomUUID()}`,
  startMs = Date.parse("2026-11-24T10:00:00Z"),
): AuditEvent[] {
  return Array.from({ length: count }, (_, i) =>
    refusal({ route, ...CODES[i % CODES.length], ts: new Date(startMs + i).toISOString() }),
  );
}

function capturedErrors(): () => Record<string, any>[] {
  const lines: string[] = [];
  vi.spyOn(console, "error").mockImplementation((line: string) => void lines.push(line));
  return () => lines.map((line) => JSON.parse(line));
}

describe("audit event classes", () => {
  it("puts verified callers (any decision) and authenticated admin requests first, whatever the refusal code", () => {
    const verified = { issuer: "corp-gitlab" };
    expect(auditClassOf(issuance())).toBe("priority");
    expect(auditClassOf(refusal({ ...verified, status: 403, decision: "deny", error_code: "policy_denied" }))).toBe(
      "priority",
    );
    expect(auditClassOf(refusal({ ...verified, status: 502, decision: "error", error_code: "upstream_error" }))).toBe(
      "priority",
    );
    expect(
      auditClassOf(
        refusal({ route: "GET /v1/admin/status", status: 200, decision: "allow", error_code: null, actor: "admin" }),
      ),
    ).toBe("priority");
    expect(
      auditClassOf(
        refusal({
          route: "PUT /v1/admin/issuers/:name/jwks",
          status: 400,
          error_code: "jwks_invalid",
          actor: "gpk_0123456789abcdef",
          issuer: "corp-gitlab",
        }),
      ),
    ).toBe("priority");
    // Claims of an unauthenticated caller are junk: a path issuer, a made-up credential id.
    expect(
      auditClassOf(
        refusal({
          route: "PUT /v1/admin/issuers/:name/jwks",
          status: 401,
          error_code: "push_credential_invalid",
          claimed_actor: "gpk_0123456789abcdef",
          claimed_issuer: "corp-gitlab",
        }),
      ),
    ).toBe("junk");
    // A verified caller over its rate or use limit: junk (folded per caller), though its issuer is verified.
    for (const error_code of ["rate_limited", "use_limit_exceeded"])
      expect(auditClassOf(refusal({ ...verified, status: 429, error_code }))).toBe("junk");
    // Junk: no verified identity, whatever code the refusal carries (generic or detailed).
    for (const error_code of [
      "invalid_token",
      "token_malformed",
      "token_expired",
      "issuer_unknown",
      "not_found",
      "admin_unauthorized",
      "admin_disabled",
    ]) {
      expect(auditClassOf(refusal({ error_code }))).toBe("junk");
    }
    expect(auditClassOf(refusal({ route: "GET /v1/admin/*", error_code: "admin_unauthorized" }))).toBe("junk");
    expect(auditClassOf(refusal({ route: "GET /v1/admin/status", error_code: "admin_unauthorized" }))).toBe("junk");
  });

  it("classes the Worker's own admin events by whether the admin token was accepted", async () => {
    const request = async (headers: Record<string, string>) => {
      const res = await SELF.fetch("https://gatepass.test/v1/admin/status", { headers });
      const [event] = await auditEventsFor(res.headers.get("X-Request-Id")!);
      return auditClassOf(event!);
    };
    expect(await request({ Authorization: "Bearer test-admin-token" })).toBe("priority");
    expect(await request({ Authorization: "Bearer not-the-admin-token" })).toBe("junk");
    expect(await request({})).toBe("junk");
  });
});

describe("audit queue caps", () => {
  it(`holds at most ${MAX_AUDIT_QUEUE_EVENTS} events; a verified caller's event beyond that goes to the log in full, counted`, async () => {
    const errors = capturedErrors();
    const db = countingDb("until-released");
    const writer = new AuditWriter(defaultDeps, manualLinger().sleep, noRateBudget());
    const events = Array.from({ length: MAX_AUDIT_QUEUE_EVENTS + 5 }, () => issuance());
    for (const event of events) void writer.write(db.env, event);
    expect(writer.status()).toMatchObject({ queued_events: MAX_AUDIT_QUEUE_EVENTS, logged_over_cap_this_isolate: 5 });
    const logged = errors();
    expect(logged.map((entry) => entry.event)).toEqual(Array(5).fill("audit_queue_full"));
    expect(logged.map((entry) => entry.audit)).toEqual(events.slice(-5));
  });

  it(`holds at most ${MAX_AUDIT_QUEUE_BYTES} bytes of events, counting two bytes a character when one is beyond Latin-1`, async () => {
    capturedErrors();
    expect([memoryBytes("éa"), memoryBytes("ła")]).toEqual([2, 4]);
    const db = countingDb("until-released");
    const writer = new AuditWriter(defaultDeps, manualLinger().sleep, noRateBudget());
    const long = "ł".repeat(1024);
    const events = Array.from({ length: 2_000 }, () =>
      issuance({ project_path: long, namespace_path: long, ref: long }),
    );
    const perEvent = memoryBytes(JSON.stringify(events[0]));
    for (const event of events) void writer.write(db.env, event);
    const { queued_events, queued_bytes, logged_over_cap_this_isolate } = writer.status();
    expect(queued_events).toBe(Math.floor(MAX_AUDIT_QUEUE_BYTES / perEvent));
    expect(queued_bytes).toBe(queued_events * perEvent);
    expect(logged_over_cap_this_isolate).toBe(events.length - queued_events);
  });

  it(`holds at most ${MAX_AUDIT_QUEUED_JUNK_EVENTS} junk events and ${MAX_AUDIT_QUEUED_JUNK_BYTES} bytes of junk; the rest is folded`, async () => {
    const db = countingDb("until-released");
    const writer = new AuditWriter(defaultDeps, manualLinger().sleep, noRateBudget());
    for (const event of flood(MAX_AUDIT_QUEUED_JUNK_EVENTS + 50)) void writer.write(db.env, event);
    expect(writer.status()).toMatchObject({
      queued_junk_events: MAX_AUDIT_QUEUED_JUNK_EVENTS,
      folded_refusals_this_isolate: 50,
    });

    const bulky = new AuditWriter(defaultDeps, manualLinger().sleep, noRateBudget());
    const long = "x".repeat(4_000);
    const big = flood(500).map((event) => ({ ...event, route: `POST /v1/flood/${long}` }));
    const perEvent = memoryBytes(JSON.stringify(big[0]));
    for (const event of big) void bulky.write(db.env, event);
    const { queued_junk_events, queued_bytes } = bulky.status();
    expect(queued_junk_events).toBe(Math.floor(MAX_AUDIT_QUEUED_JUNK_BYTES / perEvent));
    expect(queued_bytes).toBeLessThanOrEqual(MAX_AUDIT_QUEUED_JUNK_BYTES);
  });
});

describe("folded refusals", () => {
  it("are written to D1 as summary rows: how many of each code, and the time window they cover", async () => {
    const db = countingDb("until-released");
    const clock = testClock(); // its linger moves it, so summaries' windows end
    const writer = new AuditWriter(clock.deps, clock.sleep, noRateBudget());
    const events = flood(MAX_AUDIT_QUEUED_JUNK_EVENTS + 300);
    const writes = events.map((event) => writer.write(db.env, event));
    db.release();
    await Promise.all(writes);

    const rows = await rowsOfRoute(events[0]!.route);
    const single = rows.filter((row) => row.folded_count === null);
    const summaries = rows.filter((row) => row.folded_count !== null);
    expect(single.map((row) => row.request_id).sort()).toEqual(
      events
        .slice(0, MAX_AUDIT_QUEUED_JUNK_EVENTS)
        .map((e) => e.request_id)
        .sort(),
    );
    const folded = events.slice(MAX_AUDIT_QUEUED_JUNK_EVENTS);
    const expected = CODES.map(({ error_code, status, decision = "deny" }) => {
      const ofCode = folded.filter((e) => e.error_code === error_code);
      return expect.objectContaining({
        error_code,
        status,
        decision,
        route: events[0]!.route,
        issuer: null,
        token_sha256: null,
        folded_count: ofCode.length,
        folded_from: ofCode[0]!.ts,
        ts: ofCode.at(-1)!.ts,
        request_id: expect.stringMatching(/^folded-/),
      });
    });
    expect(summaries).toEqual(expect.arrayContaining(expected));
    expect(summaries).toHaveLength(CODES.length);
    // Nothing dropped: every refusal is a row of its own or counted in a summary.
    expect(single.length + summaries.reduce((sum, row) => sum + row.folded_count!, 0)).toBe(events.length);
    expect(writer.status()).toMatchObject({
      queued_events: 0,
      folded_refusals_this_isolate: 300,
      folded_refusals_unwritten: 0,
    });
  });

  it(`go out with the next batch once a window (${AUDIT_FOLD_WINDOW_MS} ms) has passed, even while full batches still wait`, async () => {
    const run = async (advanceMs: number) => {
      let nowMs = Date.parse("2026-11-24T10:00:00Z");
      const db = countingDb("until-released");
      const writer = new AuditWriter({ now: () => nowMs }, briefLinger, noRateBudget()); // a linger that takes no time on this clock
      const writes = flood(MAX_AUDIT_QUEUED_JUNK_EVENTS + 10).map((event) => writer.write(db.env, event));
      nowMs += advanceMs;
      db.release();
      await Promise.all(writes);
      const carrying = () => db.statements.findIndex((rows) => rows.some((row) => row.folded_count !== null));
      const withinWindow = carrying();
      // Once the window is over, the next request's write takes them.
      nowMs += AUDIT_FOLD_WINDOW_MS;
      await writer.write(db.env, issuance());
      return { withinWindow, later: carrying(), statements: db.statements.length };
    };
    // Three batches were in flight when the window closed; the fourth carries the summaries.
    expect((await run(AUDIT_FOLD_WINDOW_MS)).withinWindow).toBe(AUDIT_MAX_INSERTS_IN_FLIGHT);
    // Within the window they are not written, even once the queue is empty (per-second rows whatever
    // D1's speed), but by the first write after it.
    const early = await run(AUDIT_FOLD_WINDOW_MS - 1);
    expect(early.withinWindow).toBe(-1);
    expect(early.later).toBe(early.statements - 1);
  });

  it("keep one summary per status and code, with the route when all share it", () => {
    const folder = new RefusalFolder();
    const [a, b, c] = flood(3, "GET /access");
    folder.fold(b!, 0);
    folder.fold(a!, 0);
    folder.fold({ ...c!, error_code: "token_malformed", status: 401, route: "POST /v1/token" }, 0);
    expect(folder.pending).toBe(3);
    expect(folder.windowElapsed(AUDIT_FOLD_WINDOW_MS - 1, AUDIT_FOLD_WINDOW_MS)).toBe(false);
    expect(folder.windowElapsed(AUDIT_FOLD_WINDOW_MS, AUDIT_FOLD_WINDOW_MS)).toBe(true);
    expect(folder.take()).toEqual([
      expect.objectContaining({
        error_code: "issuer_unknown",
        route: "GET /access",
        folded_count: 1,
        folded_from: b!.ts,
        ts: b!.ts,
      }),
      expect.objectContaining({
        error_code: "token_malformed",
        route: "*",
        folded_count: 2,
        folded_from: a!.ts,
        ts: c!.ts,
      }),
    ]);
    expect([folder.pending, folder.total]).toEqual([0, 3]);
  });
});

describe("verified callers under a junk flood", () => {
  it("keep every event: all land in D1 while the junk beyond its share is folded", async () => {
    const db = countingDb("until-released");
    const clock = testClock(); // its linger moves it, so summaries' windows end
    const writer = new AuditWriter(clock.deps, clock.sleep, noRateBudget());
    const junk = flood(5_000);
    const verified: AuditEvent[] = [];
    const writes: Promise<void>[] = [];
    junk.forEach((event, i) => {
      writes.push(writer.write(db.env, event));
      if (i % 25 === 0) {
        const issued = issuance();
        verified.push(issued);
        writes.push(writer.write(db.env, issued));
      }
    });
    db.release();
    await Promise.all(writes);
    expect(await storedEvents(verified.map((e) => e.request_id))).toEqual(verified);
    const rows = await rowsOfRoute(junk[0]!.route);
    expect(rows.reduce((sum, row) => sum + (row.folded_count ?? 1), 0)).toBe(junk.length);
    expect(writer.status()).toMatchObject({ logged_over_cap_this_isolate: 0, queued_events: 0 });
  });

  it("make waiting junk give way (folded, newest first) when the whole queue is full", async () => {
    const db = countingDb("until-released");
    const writer = new AuditWriter(defaultDeps, manualLinger().sleep, noRateBudget());
    const junk = flood(MAX_AUDIT_QUEUED_JUNK_EVENTS);
    for (const event of junk) void writer.write(db.env, event);
    for (let i = MAX_AUDIT_QUEUED_JUNK_EVENTS; i < MAX_AUDIT_QUEUE_EVENTS; i++) void writer.write(db.env, issuance());
    expect(writer.status()).toMatchObject({ queued_events: MAX_AUDIT_QUEUE_EVENTS, folded_refusals_this_isolate: 0 });
    for (let i = 0; i < 10; i++) void writer.write(db.env, issuance());
    expect(writer.status()).toMatchObject({
      queued_events: MAX_AUDIT_QUEUE_EVENTS,
      queued_junk_events: MAX_AUDIT_QUEUED_JUNK_EVENTS - 10,
      folded_refusals_this_isolate: 10,
      logged_over_cap_this_isolate: 0,
    });
  });
});

describe("audit inserts", () => {
  it("insert a full batch at once, without waiting for the linger", async () => {
    const db = countingDb();
    const linger = manualLinger(); // never ended: only a full batch can be inserted
    const writer = new AuditWriter(defaultDeps, linger.sleep);
    const events = Array.from({ length: MAX_AUDIT_BATCH_EVENTS + 1 }, () => issuance());
    const writes = events.map((event) => writer.write(db.env, event));
    await writes[MAX_AUDIT_BATCH_EVENTS - 1];
    expect(db.statements.map((rows) => rows.length)).toEqual([MAX_AUDIT_BATCH_EVENTS]);
    expect(await storedEvents(events.map((e) => e.request_id))).toEqual(events.slice(0, MAX_AUDIT_BATCH_EVENTS));
    expect(linger.waiting).toBe(1); // the partial batch waits for it
  });

  it(`overlap, up to ${AUDIT_MAX_INSERTS_IN_FLIGHT} at once`, async () => {
    const db = countingDb("until-released");
    const writer = new AuditWriter(defaultDeps, briefLinger, noRateBudget());
    const events = Array.from({ length: 5 * MAX_AUDIT_BATCH_EVENTS }, () => issuance());
    const writes = events.map((event) => writer.write(db.env, event));
    await waitFor(() => db.inFlight === AUDIT_MAX_INSERTS_IN_FLIGHT);
    await new Promise((resolve) => setTimeout(resolve, 20)); // the linger is over: still no fourth insert
    expect(db.statements).toHaveLength(AUDIT_MAX_INSERTS_IN_FLIGHT);
    db.release();
    await Promise.all(writes);
    expect(db.maxInFlight).toBe(AUDIT_MAX_INSERTS_IN_FLIGHT);
    expect(AUDIT_MAX_INSERTS_IN_FLIGHT).toBeGreaterThan(1);
    expect(db.statements.map((rows) => rows.length)).toEqual(Array(5).fill(MAX_AUDIT_BATCH_EVENTS));
    expect(await storedEvents(events.map((e) => e.request_id))).toHaveLength(events.length);
  });

  it("send a batch D1 refuses to the log in full, summaries included, and count it", async () => {
    const errors = capturedErrors();
    const clock = testClock(); // its linger moves it, so summaries' windows end
    const writer = new AuditWriter(clock.deps, clock.sleep, noRateBudget());
    let release!: () => void;
    const down = new Promise<void>((resolve) => (release = resolve)).then(() =>
      Promise.reject(new Error("D1 is down")),
    );
    down.catch(() => {});
    const brokenDb = {
      ...env,
      DB: { prepare: () => ({ bind: () => ({ run: () => down }) }) } as unknown as D1Database,
    } as Env;
    const events = flood(MAX_AUDIT_QUEUED_JUNK_EVENTS + 20);
    const writes = events.map((event) => writer.write(brokenDb, event));
    release();
    await Promise.all(writes);
    const logged = errors().filter((entry) => entry.event === "audit_write_failed");
    expect(logged.every((entry) => entry.reason === "D1 is down")).toBe(true);
    const audits = logged.map((entry) => entry.audit as AuditEvent);
    expect(
      audits
        .filter((a) => a.folded_count === null)
        .map((a) => a.request_id)
        .sort(),
    ).toEqual(
      events
        .slice(0, MAX_AUDIT_QUEUED_JUNK_EVENTS)
        .map((e) => e.request_id)
        .sort(),
    );
    expect(audits.reduce((sum, a) => sum + (a.folded_count ?? 0), 0)).toBe(20);
    expect(writer.failures).toBe(logged.length);
    expect(writer.status()).toMatchObject({
      queued_events: 0,
      write_failures_this_isolate: logged.length,
      last_failure: "D1 is down",
    });
  });
});

// Keeps buildAuditEvent's shape and the summary columns in step.
it("gives every event of a request null summary columns", () => {
  expect(buildAuditEvent({ route: "x" }, { requestId: "r", status: 200, now: 0 })).toMatchObject({
    folded_count: null,
    folded_from: null,
  });
});

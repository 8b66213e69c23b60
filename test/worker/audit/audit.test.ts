import { SELF, createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildAuditEvent } from "../../../src/audit/audit-event";
import { AuditWriter, pruneAuditEvents } from "../../../src/audit/audit-writer";
import type { Env } from "../../../src/config";
import { defaultDeps } from "../../../src/deps";
import {
  AUDIT_BATCH_LINGER_MS,
  AUDIT_INSERT_TIMEOUT_MS,
  MAX_AUDIT_BATCH_EVENTS,
  MAX_AUDIT_BATCH_LENGTH,
} from "../../../src/limits";
import worker from "../../../src/index";
import { tokenDigest } from "../../../src/verify/verifier";
import { bearer, createHarness as createAppHarness } from "../exchange/app-harness";
import { auditEventsFor } from "./events";
import {
  briefLinger,
  countingDb,
  issuance as sampleEvent,
  manualLinger,
  settlesWithin,
  storedEvents,
  waitFor,
} from "./writer-support";

afterEach(() => vi.restoreAllMocks());

describe("audit events", () => {
  it("records one event for a refused request, with the stable code and no token", async () => {
    const res = await SELF.fetch("https://gatepass.test/v1/unknown-endpoint", {
      headers: { Authorization: "Bearer not.a.token" },
    });
    const requestId = res.headers.get("X-Request-Id")!;
    const events = await auditEventsFor(requestId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ decision: "deny", error_code: "not_found", status: 404 });
    expect(JSON.stringify(events[0])).not.toContain("not.a.token");
  });

  it("records the hash of a refused token, so a leaked token replayed after it expired can be traced", async () => {
    const app = await createAppHarness();
    await app.scenario();
    const expired = await app.ciToken({}, { ttl: -600 });
    const res = await app.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer(expired) });
    expect(res.status).toBe(401);
    const [event] = await auditEventsFor(res.headers.get("X-Request-Id")!);
    expect(event).toMatchObject({
      error_code: "token_expired",
      token_sha256: await tokenDigest(expired),
      decision: "deny",
    });
  });

  it("does not audit health checks", async () => {
    const res = await SELF.fetch("https://gatepass.test/healthz");
    expect(await auditEventsFor(res.headers.get("X-Request-Id")!)).toHaveLength(0);
  });

  it("classifies outcomes: 2xx allow, 4xx deny, 5xx error", () => {
    const at = { requestId: "r", now: 0 };
    expect(buildAuditEvent({ route: "x" }, { ...at, status: 200 }).decision).toBe("allow");
    expect(buildAuditEvent({ route: "x" }, { ...at, status: 403, errorCode: "policy_denied" }).decision).toBe("deny");
    expect(buildAuditEvent({ route: "x" }, { ...at, status: 503, errorCode: "jwks_unavailable" }).decision).toBe(
      "error",
    );
  });

  it("falls back to the log, in full, and counts every event of a batch D1 refused", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: string) => void errors.push(line));
    const brokenDb = {
      prepare: () => {
        throw new Error("D1 is down");
      },
    } as unknown as D1Database;
    const writer = new AuditWriter(defaultDeps, briefLinger);
    const events = [sampleEvent(), sampleEvent(), sampleEvent()];
    await Promise.all(events.map((event) => writer.write({ ...env, DB: brokenDb } as Env, event)));
    expect(writer.failures).toBe(3);
    expect(writer.lastFailure).toBe("D1 is down");
    const logged = errors.map((line) => JSON.parse(line));
    expect(logged.map((entry) => entry.event)).toEqual([
      "audit_write_failed",
      "audit_write_failed",
      "audit_write_failed",
    ]);
    expect(logged.map((entry) => entry.audit)).toEqual(events);
  });

  it("prunes events older than the retention period", async () => {
    const writer = new AuditWriter(defaultDeps, briefLinger);
    const now = Date.parse("2026-06-01T00:00:00Z");
    const old = sampleEvent({ ts: "2026-01-01T00:00:00.000Z", request_id: "old-event" });
    const recent = sampleEvent({ ts: "2026-05-30T00:00:00.000Z", request_id: "recent-event" });
    await writer.write(env, old);
    await writer.write(env, recent);
    const removed = await pruneAuditEvents(env, 90, now);
    expect(removed).toBeGreaterThanOrEqual(1);
    const { results } = await env.DB.prepare(
      "SELECT request_id FROM audit_events WHERE request_id IN ('old-event', 'recent-event')",
    ).all<{ request_id: string }>();
    expect(results.map((r) => r.request_id)).toEqual(["recent-event"]);
  });

  it("is pruned by the cron, even when no policy is loaded", async () => {
    await new AuditWriter(defaultDeps, briefLinger).write(
      env,
      sampleEvent({ ts: "2000-01-01T00:00:00.000Z", request_id: "ancient-event" }),
    );
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *" }), env as unknown as Env, ctx);
    await waitOnExecutionContext(ctx);
    const row = await env.DB.prepare(
      "SELECT count(*) AS n FROM audit_events WHERE request_id = 'ancient-event'",
    ).first<{ n: number }>();
    expect(row?.n).toBe(0);
  });
});

describe("audit group commit", () => {
  it("stores every field of an event as it was built: strings, integers and nulls", async () => {
    const event = sampleEvent({
      issuer: "corp-gitlab",
      token_sha256: "ab".repeat(32),
      project_id: "42",
      status: 201,
      upstream_ms: 37,
      rule: null,
    });
    await new AuditWriter(defaultDeps, briefLinger).write(env, event);
    expect(await storedEvents([event.request_id])).toEqual([event]);
  });

  it("inserts the events of concurrent requests together, in order", async () => {
    const { env: countedEnv, statements } = countingDb();
    const writer = new AuditWriter(defaultDeps, briefLinger);
    const events = Array.from({ length: 50 }, () => sampleEvent());
    await Promise.all(events.map((event) => writer.write(countedEnv, event)));
    expect(statements.map((rows) => rows.length)).toEqual([50]);
    expect(await storedEvents(events.map((e) => e.request_id))).toEqual(events);
  });

  it("lets a request that arrives while another lingers only queue its event; the lingering request writes it", async () => {
    const { env: countedEnv, statements } = countingDb();
    const linger = manualLinger();
    const writer = new AuditWriter(defaultDeps, linger.sleep);
    const first = sampleEvent();
    const lingering = writer.write(countedEnv, first);
    const second = sampleEvent();
    expect(await settlesWithin(writer.write(countedEnv, second), 50)).toBe(true);
    expect(await settlesWithin(lingering, 50)).toBe(false);
    linger.end();
    await lingering;
    expect(statements.map((rows) => rows.length)).toEqual([2]);
    expect(await storedEvents([first.request_id, second.request_id])).toEqual([first, second]);
  });

  it("lets the next request linger when the lingering one has not come back within twice the linger (its context gone)", async () => {
    let nowMs = Date.parse("2026-11-24T10:00:00Z");
    const linger = manualLinger(); // never ended, as when workerd dropped the lingering request's timer
    const writer = new AuditWriter({ now: () => nowMs }, linger.sleep);
    void writer.write(env, sampleEvent());
    nowMs += 2 * AUDIT_BATCH_LINGER_MS - 1;
    void writer.write(env, sampleEvent());
    expect(linger.waiting).toBe(1);
    nowMs += 1;
    void writer.write(env, sampleEvent());
    expect(linger.waiting).toBe(2);
  });

  it(`caps a statement at ${MAX_AUDIT_BATCH_EVENTS} events`, async () => {
    const { env: countedEnv, statements } = countingDb();
    const writer = new AuditWriter(defaultDeps, briefLinger);
    const events = Array.from({ length: 2 * MAX_AUDIT_BATCH_EVENTS + 1 }, () => sampleEvent());
    await Promise.all(events.map((event) => writer.write(countedEnv, event)));
    expect(statements.map((rows) => rows.length)).toEqual([MAX_AUDIT_BATCH_EVENTS, MAX_AUDIT_BATCH_EVENTS, 1]);
    expect(await storedEvents(events.map((e) => e.request_id))).toHaveLength(events.length);
  });

  it("caps a statement's JSON length, so events with long claims never exceed D1's value size", async () => {
    const { env: countedEnv, statements } = countingDb();
    const writer = new AuditWriter(defaultDeps, briefLinger);
    const long = "é".repeat(1024); // the longest claim value gatepass accepts; 3 bytes of UTF-8 per character
    const events = Array.from({ length: 100 }, () =>
      sampleEvent({ project_path: long, namespace_path: long, ref: long, user_login: long, jti: long }),
    );
    await Promise.all(events.map((event) => writer.write(countedEnv, event)));
    const perEvent = JSON.stringify(events[0]).length + 1;
    expect(statements.length).toBeGreaterThan(1);
    for (const rows of statements) expect(rows.length * perEvent).toBeLessThanOrEqual(MAX_AUDIT_BATCH_LENGTH);
    expect(statements.reduce((sum, rows) => sum + rows.length, 0)).toBe(events.length);
    expect(await storedEvents(events.map((e) => e.request_id))).toEqual(events);
  });

  it(`gives back the slot of an insert still unsettled after ${AUDIT_INSERT_TIMEOUT_MS} ms, logging its batch, even if its timer never fires`, async () => {
    let nowMs = Date.parse("2026-11-24T10:00:00Z");
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: string) => void errors.push(line));
    const db = countingDb(3); // the first three inserts never settle, as if their requests were gone
    const writer = new AuditWriter({ now: () => nowMs }, manualLinger().sleep);
    const stuck = Array.from({ length: 3 * MAX_AUDIT_BATCH_EVENTS }, () => sampleEvent());
    for (const event of stuck) void writer.write(db.env, event);
    expect(db.statements).toHaveLength(3);
    const next = Array.from({ length: MAX_AUDIT_BATCH_EVENTS }, () => sampleEvent());
    for (const event of next) void writer.write(db.env, event);
    expect(db.statements).toHaveLength(3); // every slot taken

    nowMs += AUDIT_INSERT_TIMEOUT_MS;
    void writer.write(db.env, sampleEvent());
    await waitFor(() => db.statements.length === 4 && db.inFlight === 3);
    expect(writer.failures).toBe(stuck.length);
    expect(errors.map((line) => JSON.parse(line).audit)).toEqual(stuck);
    expect(db.statements.slice(3).map((rows) => rows.length)).toEqual([MAX_AUDIT_BATCH_EVENTS]);
    expect(await storedEvents(next.map((e) => e.request_id))).toEqual(next);
    expect(writer.status()).toMatchObject({ queued_events: 1, inserts_in_flight: 0 });
  });

  it(`logs the batch of an insert D1 has not answered within ${AUDIT_INSERT_TIMEOUT_MS} ms, before the request's waitUntil can be cut off`, async () => {
    vi.useFakeTimers();
    try {
      const errors: string[] = [];
      vi.spyOn(console, "error").mockImplementation((line: string) => void errors.push(line));
      const { env: stuckEnv } = countingDb(1);
      const writer = new AuditWriter(defaultDeps);
      const event = sampleEvent();
      let settled = false;
      void writer.write(stuckEnv, event).then(() => (settled = true));
      await vi.advanceTimersByTimeAsync(AUDIT_BATCH_LINGER_MS + AUDIT_INSERT_TIMEOUT_MS - 1);
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(settled).toBe(true);
      expect(writer.failures).toBe(1);
      expect(errors.map((line) => JSON.parse(line))).toEqual([
        expect.objectContaining({ event: "audit_write_failed", audit: event }),
      ]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("records every request of a burst through the Worker", async () => {
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => SELF.fetch("https://gatepass.test/v1/unknown-endpoint", { method: "POST" })),
    );
    const ids = responses.map((res) => res.headers.get("X-Request-Id")!);
    for (const id of ids) expect(await auditEventsFor(id)).toHaveLength(1);
  });
});

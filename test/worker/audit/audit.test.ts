import { SELF, createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildAuditEvent, type AuditEvent } from "../../../src/audit/event";
import { AuditWriter, pruneAuditEvents } from "../../../src/audit/writer";
import type { Env } from "../../../src/config";
import worker from "../../../src/index";

async function eventsFor(requestId: string): Promise<AuditEvent[]> {
  // The event is written with waitUntil, after the response: poll briefly.
  for (let attempt = 0; attempt < 50; attempt++) {
    const { results } = await env.DB.prepare("SELECT * FROM audit_events WHERE request_id = ?").bind(requestId).all<AuditEvent>();
    if (results.length > 0) return results;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return [];
}

const sampleEvent = (overrides: Partial<AuditEvent> = {}): AuditEvent => ({
  ...buildAuditEvent({ route: "POST /v1/credentials/:target", target: "aws-readonly" }, { requestId: crypto.randomUUID(), status: 200, now: Date.now() }),
  ...overrides,
});

afterEach(() => vi.restoreAllMocks());

describe("audit events", () => {
  it("records one event for a refused request, with the stable code and no token", async () => {
    const res = await SELF.fetch("https://gatepass.test/v1/unknown-endpoint", { headers: { Authorization: "Bearer not.a.token" } });
    const requestId = res.headers.get("X-Request-Id")!;
    const events = await eventsFor(requestId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ decision: "deny", error_code: "not_found", status: 404 });
    expect(JSON.stringify(events[0])).not.toContain("not.a.token");
  });

  it("does not audit health checks", async () => {
    const res = await SELF.fetch("https://gatepass.test/healthz");
    expect(await eventsFor(res.headers.get("X-Request-Id")!)).toHaveLength(0);
  });

  it("classifies outcomes: 2xx allow, 4xx deny, 5xx error", () => {
    const at = { requestId: "r", now: 0 };
    expect(buildAuditEvent({ route: "x" }, { ...at, status: 200 }).decision).toBe("allow");
    expect(buildAuditEvent({ route: "x" }, { ...at, status: 403, errorCode: "policy_denied" }).decision).toBe("deny");
    expect(buildAuditEvent({ route: "x" }, { ...at, status: 503, errorCode: "jwks_unavailable" }).decision).toBe("error");
  });

  it("falls back to the log, in full, and counts the failure when D1 fails", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: string) => void errors.push(line));
    const brokenDb = { prepare: () => { throw new Error("D1 is down"); } } as unknown as D1Database;
    const writer = new AuditWriter();
    const event = sampleEvent();
    await writer.write({ ...env, DB: brokenDb } as Env, event);
    expect(writer.failures).toBe(1);
    expect(errors).toHaveLength(1);
    const logged = JSON.parse(errors[0]!);
    expect(logged).toMatchObject({ event: "audit_write_failed", failures: 1, audit: event });
  });

  it("prunes events older than the retention period", async () => {
    const writer = new AuditWriter();
    const now = Date.parse("2026-06-01T00:00:00Z");
    const old = sampleEvent({ ts: "2026-01-01T00:00:00.000Z", request_id: "old-event" });
    const recent = sampleEvent({ ts: "2026-05-30T00:00:00.000Z", request_id: "recent-event" });
    await writer.write(env, old);
    await writer.write(env, recent);
    const removed = await pruneAuditEvents(env, 90, now);
    expect(removed).toBeGreaterThanOrEqual(1);
    const { results } = await env.DB.prepare("SELECT request_id FROM audit_events WHERE request_id IN ('old-event', 'recent-event')").all<{ request_id: string }>();
    expect(results.map((r) => r.request_id)).toEqual(["recent-event"]);
  });

  it("is pruned by the cron, even when no policy is loaded", async () => {
    await new AuditWriter().write(env, sampleEvent({ ts: "2000-01-01T00:00:00.000Z", request_id: "ancient-event" }));
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *" }), env as unknown as Env, ctx);
    await waitOnExecutionContext(ctx);
    const row = await env.DB.prepare("SELECT count(*) AS n FROM audit_events WHERE request_id = 'ancient-event'").first<{ n: number }>();
    expect(row?.n).toBe(0);
  });
});

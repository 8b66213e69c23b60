// Operator endpoints: GET /v1/admin/status and GET /v1/admin/audit, behind the admin token.
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../../src/app";
import { buildAuditEvent, type AuditEvent } from "../../../src/audit/audit-event";
import { auditPageAfterSql } from "../../../src/audit/audit-query";
import { AuditWriter } from "../../../src/audit/audit-writer";
import { defaultDeps } from "../../../src/deps";
import { normalizePolicy } from "../../../src/policy/policy-schema";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import { ACTIVE_SNAPSHOT_KEY } from "../../../src/policy/active-policy";
import { MAX_AUDIT_FILTER_LENGTH, MAX_AUDIT_QUEUED_JUNK_EVENTS } from "../../../src/limits";
import { createServices } from "../../../src/services";
import { JunkBudget } from "../../../src/audit/junk-budget";
import { briefLinger, countingDb, refusal, testClock } from "./writer-support";

/** These tests fill the queue's junk share, as under a stalled D1: no per-second budget (tested in budget.test.ts). */
const noRateBudget = () => new JunkBudget(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
import { generateSecret, serializeSecret } from "../../../src/signing-keys/signing-key-rotation";

const ADMIN = { Authorization: "Bearer test-admin-token" };
const app = createApp(defaultDeps);
const get = async (path: string, headers: Record<string, string> = ADMIN) => {
  const res = await app.request(`https://gatepass.test${path}`, { headers }, env);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

let version: string;

beforeAll(async () => {
  const source = {
    issuers: [
      {
        name: "corp-gitlab",
        url: "https://gitlab.example.com",
        audiences: ["https://gatepass.test"],
        keys: { source: "pushed" },
      },
    ],
    targets: [
      { name: "reader", type: "oidc", audience: "read.example" },
      { name: "reader-rsa", type: "oidc", audience: "rsa-only.example", signing_alg: "RS256" },
    ],
    rules: [{ name: "infra", issuer: "corp-gitlab", match: { project_path: "platform/infra" }, allow: ["reader"] }],
  };
  const { policy, problems } = normalizePolicy([{ name: "policy.yaml", value: source }], "source");
  expect(problems).toEqual([]);
  const built = await buildSnapshot(policy, { sourceDigest: "0".repeat(64), createdAt: "2026-11-24T00:00:00.000Z" });
  version = built.snapshot.version;
  await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, built.text);

  const writer = new AuditWriter(defaultDeps, briefLinger);
  const event = (overrides: Partial<AuditEvent>): AuditEvent => ({
    ...buildAuditEvent(
      { route: "POST /v1/credentials/:target" },
      { requestId: crypto.randomUUID(), status: 200, now: Date.now() },
    ),
    ...overrides,
  });
  await writer.write(
    env,
    event({ project_path: "platform/infra", project_id: "42", target: "reader", decision: "allow" }),
  );
  await writer.write(
    env,
    event({
      project_path: "platform/infra",
      project_id: "42",
      target: "reader",
      decision: "deny",
      status: 403,
      error_code: "policy_denied",
    }),
  );
  await writer.write(
    env,
    event({
      project_path: "other/app",
      project_id: "7",
      target: "reader",
      decision: "deny",
      status: 403,
      error_code: "policy_denied",
    }),
  );
});

describe("admin authentication", () => {
  it("refuses status and audit without the admin token, with admin_unauthorized", async () => {
    for (const path of ["/v1/admin/status", "/v1/admin/audit"]) {
      expect(await get(path, {})).toMatchObject({ status: 401, body: { code: "admin_unauthorized" } });
      expect(await get(path, { Authorization: "Bearer test-admin-toke" })).toMatchObject({
        status: 401,
        body: { code: "admin_unauthorized" },
      });
    }
  });

  it("refuses an Authorization header beyond 1024 characters, even around the right token", async () => {
    expect((await get("/v1/admin/status", { Authorization: "Bearer \t test-admin-token" })).status).toBe(200);
    // Padded inside: fetch strips trailing whitespace from header values.
    const padded = `Bearer${" \t".repeat(550)}test-admin-token`;
    expect(await get("/v1/admin/status", { Authorization: padded })).toMatchObject({
      status: 401,
      body: { code: "admin_unauthorized" },
    });
  });
});

describe("GET /v1/admin/status", () => {
  it("reports the active policy version, issuers with their key source, signing keys and recent errors", async () => {
    const { status, body } = await get("/v1/admin/status");
    expect(status).toBe(200);
    expect(body.policy).toMatchObject({ version, created_at: "2026-11-24T00:00:00.000Z", last_error: null });
    expect(body.issuers).toEqual([expect.objectContaining({ name: "corp-gitlab", source: "pushed" })]);
    // Development mode without a secret: ephemeral keys, one ES256 key signing.
    expect(body.signing_keys.keys).toEqual(
      expect.arrayContaining([expect.objectContaining({ alg: "ES256", status: "current" })]),
    );
    expect(body.signing_keys.targets_without_key).toEqual([]);
    expect(body.errors_last_hour).toMatchObject({ policy_denied: 2 });
    expect(body.audit).toMatchObject({
      write_failures_this_isolate: 0,
      last_failure: null,
      logged_over_cap_this_isolate: 0,
    });
  });

  it("reports this isolate's audit queue, so an operator sees a flood: depth, bytes, folded refusals", async () => {
    const services = createServices(defaultDeps);
    services.audit = new AuditWriter(defaultDeps, undefined, noRateBudget()); // the queue's own caps, as under a stalled D1
    const held = countingDb("until-released");
    for (let i = 0; i < MAX_AUDIT_QUEUED_JUNK_EVENTS + 40; i++) void services.audit.write(held.env, refusal());
    const res = await createApp(defaultDeps, services).request(
      "https://gatepass.test/v1/admin/status",
      { headers: ADMIN },
      env,
    );
    const body = (await res.json()) as Record<string, any>;
    expect(body.audit).toMatchObject({
      queued_events: MAX_AUDIT_QUEUED_JUNK_EVENTS,
      queued_junk_events: MAX_AUDIT_QUEUED_JUNK_EVENTS,
      inserts_in_flight: 3,
      folded_refusals_this_isolate: 40,
      folded_refusals_unwritten: 40,
      logged_over_cap_this_isolate: 0,
      queue_limit: { events: expect.any(Number), bytes: expect.any(Number) },
      junk_rows_today: expect.any(Number),
      junk_not_stored_over_daily_cap_this_isolate: 0,
    });
    expect(body.request_log).toMatchObject({ lines_per_second: expect.any(Number), folded_lines_this_isolate: 0 });
    expect(body.audit.queued_bytes).toBeGreaterThan(0);
  });

  it("counts each refusal a summary row folded in errors_last_hour", async () => {
    const count = async () =>
      ((await get("/v1/admin/status")).body.errors_last_hour.token_malformed as number | undefined) ?? 0;
    const before = await count();
    const db = countingDb("until-released");
    const clock = testClock(); // its linger moves it, so the summaries' window ends
    const writer = new AuditWriter(clock.deps, clock.sleep, noRateBudget());
    const writes = Array.from({ length: MAX_AUDIT_QUEUED_JUNK_EVENTS + 25 }, () =>
      writer.write(db.env, refusal({ ts: new Date().toISOString() })),
    );
    db.release();
    await Promise.all(writes);
    expect(await count()).toBe(before + MAX_AUDIT_QUEUED_JUNK_EVENTS + 25);
  });

  it("names the targets whose signing algorithm has no current key (they would answer signing_unavailable)", async () => {
    const esOnly = serializeSecret(await generateSecret(["ES256"], Math.floor(Date.now() / 1000)));
    const res = await createApp(defaultDeps).request(
      "https://gatepass.test/v1/admin/status",
      { headers: ADMIN },
      { ...env, GATEPASS_SIGNING_KEYS: esOnly },
    );
    const body = (await res.json()) as Record<string, any>;
    expect(body.signing_keys.keys.map((k: { alg: string }) => k.alg)).toEqual(["ES256", "ES256"]);
    expect(body.signing_keys.targets_without_key).toEqual(["reader-rsa"]);
  });
});

describe("GET /v1/admin/audit", () => {
  it("filters by project (path or id) and decision, newest first", async () => {
    const byPath = await get("/v1/admin/audit?project=platform/infra");
    expect(byPath.body.events.map((e: AuditEvent) => e.decision).sort()).toEqual(["allow", "deny"]);
    const byId = await get("/v1/admin/audit?project=7&decision=deny");
    expect(byId.body.events).toEqual([
      expect.objectContaining({ project_path: "other/app", error_code: "policy_denied" }),
    ]);
  });

  it("treats filter values as data, never as SQL", async () => {
    expect((await get("/v1/admin/audit?target=reader")).body.events).toHaveLength(3);
    for (const filter of ["project", "target"]) {
      const { status, body } = await get(`/v1/admin/audit?${filter}=${encodeURIComponent("x' OR '1'='1")}`);
      expect(status).toBe(200);
      expect(body.events).toEqual([]);
    }
  });

  it("refuses unknown or malformed filters with request_invalid", async () => {
    const tooLong = "p".repeat(MAX_AUDIT_FILTER_LENGTH + 1);
    for (const query of [
      "?user=root",
      "?decision=maybe",
      "?since=yesterday",
      "?limit=0",
      "?limit=100000",
      "?project=",
      `?target=${tooLong}`,
    ]) {
      expect(await get(`/v1/admin/audit${query}`)).toMatchObject({ status: 400, body: { code: "request_invalid" } });
    }
  });

  it("lists summary rows of folded refusals among the events, with their count and window", async () => {
    const route = `POST /v1/flood/${crypto.randomUUID()}`;
    const db = countingDb("until-released");
    const clock = testClock();
    const writer = new AuditWriter(clock.deps, clock.sleep, noRateBudget());
    const events = Array.from({ length: MAX_AUDIT_QUEUED_JUNK_EVENTS + 3 }, (_, i) =>
      refusal({ route, ts: new Date(Date.parse("2026-11-24T12:00:00Z") + i).toISOString() }),
    );
    const writes = events.map((event) => writer.write(db.env, event));
    db.release();
    await Promise.all(writes);
    const { body } = await get("/v1/admin/audit?decision=deny&limit=500");
    expect(body.events.filter((e: AuditEvent) => e.route === route && e.folded_count !== null)).toEqual([
      expect.objectContaining({
        error_code: "token_malformed",
        status: 401,
        folded_count: 3,
        folded_from: events.at(-3)!.ts,
        ts: events.at(-1)!.ts,
      }),
    ]);
  });

  it("honours since and limit", async () => {
    expect((await get("/v1/admin/audit?since=2999-01-01T00:00:00Z")).body.events).toEqual([]);
    expect((await get("/v1/admin/audit?limit=1")).body.events).toHaveLength(1);
  });
});

describe("auditPageAfterSql (gatepass audit tail)", () => {
  it("pages matching events after an id oldest first, while GET /v1/admin/audit stays newest first", async () => {
    const page = async (afterId: number, size: number) => {
      // target: this file's other tests add denials of unverified tokens, which name no target.
      const { sql, params } = auditPageAfterSql({ decision: "deny", target: "reader" }, afterId, size);
      return (
        await env.DB.prepare(sql)
          .bind(...params)
          .all<AuditEvent & { id: number }>()
      ).results;
    };
    const first = await page(0, 1);
    const second = await page(first[0]!.id, 1);
    expect([...first, ...second].map((e) => e.project_path)).toEqual(["platform/infra", "other/app"]);
    expect(await page(second[0]!.id, 1)).toEqual([]);
    expect((await page(0, 500)).map((e) => e.id)).toEqual([first[0]!.id, second[0]!.id]);
    const admin = await get("/v1/admin/audit?decision=deny&target=reader");
    expect(admin.body.events.map((e: AuditEvent) => e.project_path)).toEqual(["other/app", "platform/infra"]);
  });
});

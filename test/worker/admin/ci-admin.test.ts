// Admin routes reached with a CI ID token: verified like any other token, the route's capability
// granted by the active policy, the audit row's actor the verified pipeline. The admin token keeps
// working (bootstrap, break-glass).
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { bearer, createHarness, type Harness } from "../exchange/app-harness";

const ADMIN_TOKEN = "test-admin-token";
const POLICY_REPO = { project_id: "42", ref_protected: "true", pipeline_source: ["push", "web"] };
const READ_CAPABILITIES = ["gatepass:status-read", "gatepass:audit-read", "gatepass:policies-plan"];

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ rule: { match: POLICY_REPO, allow: ["oidc-any", ...READ_CAPABILITIES] } });
  await h.scenario();
  await env.DB.prepare("DELETE FROM policy_versions").run();
  await env.DB.prepare(
    "INSERT INTO policy_versions (version, source_digest, snapshot, pushed_by, pushed_at, active) VALUES (?, ?, ?, ?, ?, 1)",
  )
    .bind(
      "a".repeat(64),
      "0".repeat(64),
      JSON.stringify({ format: 1, version: "a".repeat(64) }),
      "admin",
      "2026-12-01T00:00:00.000Z",
    )
    .run();
});

async function call(path: string, headers: Record<string, string>, vars: Record<string, unknown> = {}, method = "GET") {
  const res = await h.request(path, { method, headers }, vars);
  const text = await res.text();
  const requestId = res.headers.get("X-Request-Id")!;
  const row = await env.DB.prepare(
    "SELECT actor, claimed_actor, issuer, decision, error_code FROM audit_events WHERE request_id = ?",
  )
    .bind(requestId)
    .first();
  return {
    status: res.status,
    body: text.startsWith("{") ? (JSON.parse(text) as Record<string, any>) : text,
    audit: row,
  };
}

describe("admin routes with a CI ID token", () => {
  it("serves status, audit and the plan reads to a job whose rule grants the capability, audited as the verified pipeline", async () => {
    const token = await h.ciToken();
    for (const path of [
      "/v1/admin/status",
      "/v1/admin/audit",
      "/v1/admin/policies/history",
      "/v1/admin/seen-identities?since=2026-01-01",
    ]) {
      const res = await call(path, bearer(token));
      expect(res.status, path).toBe(200);
      expect(res.audit, path).toMatchObject({ actor: `ci:ci:42:1234`, issuer: "ci", decision: "allow" });
    }
  });

  it("takes the actor from the verified token, never from a claimed value", async () => {
    const token = await h.ciToken({ job_id: "5555" });
    const res = await call("/v1/admin/status", { ...bearer(token), "Gatepass-Actor": "admin", "X-Actor": "admin" });
    expect(res.audit).toMatchObject({ actor: "ci:ci:42:5555" });
  });

  it("works with no admin token set at all", async () => {
    const res = await call("/v1/admin/policies/history", bearer(await h.ciToken()), {
      GATEPASS_ADMIN_TOKEN: undefined,
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ versions: [{ version: "a".repeat(64), active: true, pushed_by: "admin" }] });
  });

  it("refuses a verified job its rule does not grant the capability with admin_forbidden naming it", async () => {
    for (const [claims, path, capability] of [
      [{ project_id: "43" }, "/v1/admin/status", "gatepass:status-read"],
      [{ ref_protected: "false" }, "/v1/admin/audit", "gatepass:audit-read"],
      [{ pipeline_source: "merge_request_event" }, "/v1/admin/policies/active", "gatepass:policies-plan"],
    ] as const) {
      const res = await call(path, bearer(await h.ciToken(claims)));
      expect(
        [res.status, (res.body as Record<string, unknown>).code, (res.body as Record<string, unknown>).capability],
        path,
      ).toEqual([403, "admin_forbidden", capability]);
      expect(res.audit).toMatchObject({ decision: "deny", error_code: "admin_forbidden" });
    }
  });

  it("refuses a capability the rule does not list (push) with admin_forbidden", async () => {
    const res = await call("/v1/admin/policies", bearer(await h.ciToken()), {}, "PUT");
    expect([
      res.status,
      (res.body as Record<string, unknown>).code,
      (res.body as Record<string, unknown>).capability,
    ]).toEqual([403, "admin_forbidden", "gatepass:policies-push"]);
  });

  it("refuses a token that does not verify with the uniform token_unverified, and its claims name no actor", async () => {
    // A real token whose payload now names another project: its signature no longer verifies.
    const [head, , signature] = (await h.ciToken()).split(".");
    const payload = JSON.parse(
      atob((await h.ciToken()).split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")),
    ) as Record<string, unknown>;
    const forgedPayload = btoa(JSON.stringify({ ...payload, project_id: "42", job_id: "666", ref_protected: "true" }))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    const forged = `${head}.${forgedPayload}.${signature}`;
    const res = await call("/v1/admin/status", bearer(forged));
    expect([res.status, (res.body as Record<string, unknown>).code]).toEqual([401, "token_unverified"]);
    expect(res.audit).toMatchObject({ actor: null, issuer: null });
    const expired = await call("/v1/admin/status", bearer(await h.ciToken({}, { ttl: -120 })));
    expect([expired.status, (expired.body as Record<string, unknown>).code]).toEqual([401, "token_expired"]);
  });

  it("still takes the admin token on every capability route, and refuses anything else with admin_unauthorized", async () => {
    const vars = { GATEPASS_ADMIN_TOKEN: ADMIN_TOKEN };
    const admin = await call("/v1/admin/policies/active", bearer(ADMIN_TOKEN), vars);
    expect(admin.status).toBe(200);
    expect(admin.audit).toMatchObject({ actor: "admin" });
    expect((await call("/v1/admin/status", bearer("not-the-token"), vars)).body).toMatchObject({
      code: "admin_unauthorized",
    });
    expect(
      (await call("/v1/admin/status", bearer("not-the-token"), { GATEPASS_ADMIN_TOKEN: undefined })).body,
    ).toMatchObject({ code: "admin_disabled" });
  });

  it("keeps the other admin routes admin-token only", async () => {
    const res = await call("/v1/admin/issuers/ci/jwks", bearer(await h.ciToken()), {
      GATEPASS_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    expect([res.status, (res.body as Record<string, unknown>).code]).toEqual([401, "admin_unauthorized"]);
  });

  it("refuses capabilities as exchange targets (target_unknown) and lists them in whoami's grants", async () => {
    const token = await h.ciToken();
    const res = await h.request("/v1/credentials/gatepass:status-read", { method: "POST", headers: bearer(token) });
    expect([res.status, ((await res.json()) as Record<string, unknown>).code]).toEqual([404, "target_unknown"]);
    const whoami = (await (await h.request("/v1/whoami", { headers: bearer(token) })).json()) as {
      grants: { target: string }[];
    };
    expect(whoami.grants.map((g) => g.target)).toEqual(expect.arrayContaining(READ_CAPABILITIES));
  });
});

describe("the plan reads", () => {
  it("answers a version's snapshot text, the history, and seen identities a page at a time", async () => {
    const token = bearer(await h.ciToken());
    const active = await h.request("/v1/admin/policies/active", { headers: token });
    expect(active.headers.get("Gatepass-Policy-Version")).toBe("a".repeat(64));
    expect(JSON.parse(await active.text())).toMatchObject({ format: 1 });
    expect((await call(`/v1/admin/policies/versions/${"b".repeat(64)}`, token)).body).toMatchObject({
      code: "policy_version_unknown",
    });
    expect((await call("/v1/admin/policies/versions/nothex", token)).body).toMatchObject({ code: "request_invalid" });

    await env.DB.prepare("DELETE FROM seen_identities").run();
    for (const k of ["1", "2", "3"]) {
      await env.DB.prepare(
        "INSERT INTO seen_identities (claims_sha256, issuer, claims, first_seen, last_seen, count) VALUES (?, 'ci', ?, '2026-12-01T00:00:00Z', '2026-12-02T00:00:00Z', 1)",
      )
        .bind(k.repeat(64), JSON.stringify({ project_id: k }))
        .run();
    }
    const first = await call("/v1/admin/seen-identities?since=2026-11-01&limit=2", token);
    expect(first.body).toMatchObject({
      identities: [{ claims: { project_id: "1" } }, { claims: { project_id: "2" } }],
      next: "2".repeat(64),
    });
    const second = await call(`/v1/admin/seen-identities?since=2026-11-01&limit=2&after=${"2".repeat(64)}`, token);
    expect(second.body).toMatchObject({ identities: [{ claims: { project_id: "3" } }], next: null });
    expect((await call("/v1/admin/seen-identities", token)).body).toMatchObject({ code: "request_invalid" });
    expect((await call("/v1/admin/seen-identities?since=2026-11-01&bogus=1", token)).body).toMatchObject({
      code: "request_invalid",
    });
  });
});

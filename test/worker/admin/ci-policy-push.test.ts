// The admin API's push and rollback with a CI ID token granted gatepass:policies-push: the Worker
// validates, tests and writes with the CLI push's protocol (lease, compare-and-swap, attempt log).
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { readStoredHeader } from "../../../src/policy/load-snapshot";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import { ACTIVE_SNAPSHOT_KEY } from "../../../src/policy/active-policy";
import type { IssuerConfig, RuleSpec } from "../../../src/types";
import { bearer, CI_AUDIENCE, createHarness, type Harness } from "../exchange/app-harness";

const POLICY_REPO = { project_id: "42", ref_protected: "true", pipeline_source: ["push", "web"] };
const PUSHER: Omit<RuleSpec, "name"> = {
  issuer: "ci",
  match: POLICY_REPO,
  allow: ["gatepass:policies-push", "gatepass:policies-plan"],
};

let h: Harness;
let issuer: IssuerConfig;
beforeAll(async () => {
  h = await createHarness({ rule: PUSHER });
  await h.scenario();
  issuer = {
    name: "ci",
    url: h.ciIssuerUrl,
    kind: "gitlab",
    aliases: [],
    audiences: [CI_AUDIENCE],
    algorithms: ["RS256"],
    keys: { source: "discovery" },
    max_token_age_seconds: 3600,
    accept_legacy_ci_job_jwt: false,
  };
  for (const table of ["policy_versions", "policy_history_chunks", "policy_pushes", "policy_push_lease"])
    await env.DB.prepare(`DELETE FROM ${table}`).run();
});

/** A format 1 snapshot text: the pusher rule (unless left out) and `extra` rules. */
async function snapshotText(extra: RuleSpec[] = [], withPusher = true): Promise<{ text: string; version: string }> {
  const rules = [...(withPusher ? [{ name: "policy-repo", ...PUSHER }] : []), ...extra];
  const built = await buildSnapshot(
    { issuers: [issuer], targets: h.targets, rules },
    { sourceDigest: "0".repeat(64), createdAt: "2026-12-01T00:00:00.000Z" },
  );
  return { text: built.text, version: built.snapshot.version };
}

const reader = (name: string, match: RuleSpec["match"] = { project_path: `apps/${name}` }): RuleSpec => ({
  name,
  issuer: "ci",
  match,
  allow: ["oidc-any"],
});

async function push(body: Record<string, unknown>, claims: Record<string, unknown> = {}) {
  const res = await h.request("/v1/admin/policies", {
    method: "PUT",
    headers: { ...bearer(await h.ciToken(claims)), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function activeState() {
  const { results } = await env.DB.prepare("SELECT version, pushed_by FROM policy_versions WHERE active = 1").all<{
    version: string;
    pushed_by: string;
  }>();
  const kv = await env.POLICIES.get(ACTIVE_SNAPSHOT_KEY);
  return { d1: results, kv: kv === null ? undefined : readStoredHeader(kv).version };
}

describe("PUT /v1/admin/policies with a CI ID token", () => {
  it("pushes: KV serves the version, D1 records it active, pushed by the verified pipeline", async () => {
    const { text, version } = await snapshotText([reader("one")]);
    const res = await push({
      snapshot: text,
      tests: [
        {
          name: "one reads",
          issuer: "ci",
          claims: { project_path: "apps/one", project_id: "7" },
          expect: { "oidc-any": "allow" },
        },
      ],
    });
    expect(res).toMatchObject({ status: 200, body: { version, pushed_by: "ci:ci:42:1234" } });
    expect(await activeState()).toEqual({ d1: [{ version, pushed_by: "ci:ci:42:1234" }], kv: version });
    const history = await h.request("/v1/admin/policies/history", { headers: bearer(await h.ciToken()) });
    expect(((await history.json()) as { versions: { version: string; active: boolean }[] }).versions[0]).toMatchObject({
      version,
      active: true,
    });
  });

  it("refuses a snapshot that does not load, or that lint refuses, with policy_invalid, changing nothing", async () => {
    const before = await activeState();
    const { text } = await snapshotText([reader("two")]);
    expect((await push({ snapshot: text.replace('"apps/two"', '"apps/tw0"') })).body).toMatchObject({
      code: "policy_invalid",
    });
    // A capability rule without a protected ref: the lint error push refuses, which no acknowledgement silences.
    const unprotected = await snapshotText([
      {
        name: "loose",
        issuer: "ci",
        match: { project_id: "9", pipeline_source: "push" },
        allow: ["gatepass:status-read"],
        acknowledge: { unprotected: true },
      },
    ]);
    const refused = await push({ snapshot: unprotected.text });
    expect(refused).toMatchObject({ status: 400, body: { code: "policy_invalid" } });
    expect(refused.body.error_description).toMatch(/capability-unprotected-ref/);
    expect(await activeState()).toEqual(before);
  });

  it("runs the test cases sent with it: a failing case refuses the push with policy_tests_failed", async () => {
    const before = await activeState();
    const { text } = await snapshotText([reader("three")]);
    const res = await push({
      snapshot: text,
      tests: [
        {
          name: "three deploys",
          issuer: "ci",
          claims: { project_path: "apps/other", project_id: "7" },
          expect: { "oidc-any": "allow" },
        },
      ],
    });
    expect(res).toMatchObject({ status: 400, body: { code: "policy_tests_failed" } });
    expect(res.body.error_description).toMatch(/three deploys: oidc-any: expected allow, got deny/);
    expect(
      (await push({ snapshot: text, tests: [{ name: "x", claims: {}, expect: { "oidc-any": "maybe" } }] })).body,
    ).toMatchObject({ code: "request_invalid" });
    expect(await activeState()).toEqual(before);
  });

  it("refuses a push that removes every rule granting gatepass:policies-push unless forced (lockout guard)", async () => {
    const before = await activeState();
    const { text, version } = await snapshotText(
      [reader("four"), { name: "also-plan", ...PUSHER, allow: ["gatepass:policies-plan"] }],
      false,
    );
    expect(await push({ snapshot: text })).toMatchObject({ status: 409, body: { code: "policy_lockout" } });
    expect(await activeState()).toEqual(before);
    // Forced, it lands; and the pipeline has then locked itself out, as it asked.
    expect(await push({ snapshot: text, force: true })).toMatchObject({ status: 200, body: { version } });
    // The isolate re-reads KV after its recheck interval; D1 is what the next push's guard reads.
    expect((await activeState()).d1).toEqual([{ version, pushed_by: "ci:ci:42:1234" }]);
  });

  it("ends concurrent pushes in one consistent active version: KV, D1's flag and the attempt log agree", async () => {
    // Restore a pushing policy with the admin token (bootstrap and break-glass).
    const restore = await snapshotText([reader("five")]);
    const admin = await h.request(
      "/v1/admin/policies",
      {
        method: "PUT",
        headers: { Authorization: "Bearer break-glass", "Content-Type": "application/json" },
        body: JSON.stringify({ snapshot: restore.text, force: true }),
      },
      { GATEPASS_ADMIN_TOKEN: "break-glass" },
    );
    expect(admin.status).toBe(200);
    expect((await activeState()).d1).toEqual([{ version: restore.version, pushed_by: "admin" }]);

    const versions = await Promise.all(["a", "b", "c", "d", "e"].map((n) => snapshotText([reader(`race-${n}`)])));
    const results = await Promise.all(
      versions.map((v, i) => push({ snapshot: v.text, wait: 60 }, { job_id: String(2000 + i) })),
    );
    for (const res of results) expect([200, 409]).toContain(res.status);
    for (const res of results.filter((r) => r.status === 409)) expect(res.body.code).toBe("policy_push_busy");
    expect(results.filter((r) => r.status === 200).length).toBeGreaterThan(0);

    const { d1, kv } = await activeState();
    expect(d1).toHaveLength(1);
    expect(kv).toBe(d1[0]!.version);
    const { results: attempts } = await env.DB.prepare(
      "SELECT version, outcome, activation, replaced, pushed_by FROM policy_pushes WHERE pushed_by LIKE 'ci:ci:42:20%' OR activation IS NOT NULL ORDER BY activation",
    ).all<{
      version: string;
      outcome: string;
      activation: number | null;
      replaced: string | null;
      pushed_by: string;
    }>();
    const activated = attempts.filter((a) => a.outcome === "activated");
    // Activations are a chain: each replaced the one before it, and the last is what is served.
    activated.slice(1).forEach((a, i) => expect(a.replaced).toBe(activated[i]!.version));
    expect(activated.at(-1)!.version).toBe(kv);
    expect(activated.filter((a) => a.pushed_by.startsWith("ci:ci:42:20"))).toHaveLength(
      results.filter((r) => r.status === 200).length,
    );
    expect(await env.DB.prepare("SELECT count(*) AS n FROM policy_push_lease").first()).toEqual({ n: 0 });
  });
});

describe("POST /v1/admin/policies/rollback", () => {
  it("makes a pushed version active again, pushed by the pipeline; an unknown version is policy_version_unknown", async () => {
    const { results } = await env.DB.prepare(
      "SELECT version FROM policy_versions WHERE active = 0 ORDER BY pushed_at LIMIT 1",
    ).all<{ version: string }>();
    const target = results[0]!.version;
    const headers = { ...bearer(await h.ciToken()), "Content-Type": "application/json" };
    const res = await h.request("/v1/admin/policies/rollback", {
      method: "POST",
      headers,
      body: JSON.stringify({ version: target }),
    });
    expect(res.status).toBe(200);
    expect(await activeState()).toMatchObject({ kv: target, d1: [{ version: target }] });
    const unknown = await h.request("/v1/admin/policies/rollback", {
      method: "POST",
      headers: { ...bearer(await h.ciToken()), "Content-Type": "application/json" },
      body: JSON.stringify({ version: "f".repeat(64) }),
    });
    expect([unknown.status, ((await unknown.json()) as Record<string, unknown>).code]).toEqual([
      404,
      "policy_version_unknown",
    ]);
  });
});

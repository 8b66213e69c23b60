// GET /v1/whoami with policy: the grants a token holds, and `?target=` explanations that speak only
// of the token's own claims.
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../../src/app";
import { defaultDeps } from "../../../src/deps";
import { normalizePolicy } from "../../../src/policy/policy-schema";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import { ACTIVE_SNAPSHOT_KEY } from "../../../src/policy/active-policy";
import { setIssuerScenario, standinIssuerUrl } from "../../support/standins/issuer";
import { createTestKey, gitlabClaims, jwksOf, signToken, type TestKey } from "../../support/tokens";

const AUDIENCE = "https://gatepass.test";
const issuerName = `whoami-${crypto.randomUUID().slice(0, 8)}`;
let key: TestKey;
const app = createApp(defaultDeps);

beforeAll(async () => {
  key = await createTestKey();
  await setIssuerScenario(env.STANDIN_URL, issuerName, { jwks: jwksOf(key) });
  const source = {
    issuers: [{ name: issuerName, url: standinIssuerUrl(env.STANDIN_URL, issuerName), audiences: [AUDIENCE] }],
    targets: [
      { name: "deployer", type: "oidc", audience: "deploy.example" },
      { name: "reader", type: "oidc", audience: "read.example" },
      { name: "secret-rule-target", type: "oidc", audience: "other.example" },
    ],
    rules: [
      {
        name: "infra-main",
        issuer: issuerName,
        match: { project_path: "platform/infra", ref_type: "branch", ref: "main", ref_protected: "true" },
        allow: ["deployer"],
      },
      { name: "platform-reads", issuer: issuerName, match: { namespace_path: "platform/**" }, allow: ["reader"] },
      {
        name: "hidden",
        issuer: issuerName,
        match: { project_path: "secret/vault-of-secrets", ref_type: "tag", ref: "v*" },
        allow: ["secret-rule-target"],
      },
    ],
  };
  const { policy, problems } = normalizePolicy([{ name: "policy.yaml", value: source }], "source");
  expect(problems).toEqual([]);
  const { text } = await buildSnapshot(policy, { sourceDigest: "0".repeat(64), createdAt: new Date().toISOString() });
  await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, text);
});

async function whoami(claims: Record<string, unknown>, query = ""): Promise<Record<string, any>> {
  const token = await signToken(key, {
    ...gitlabClaims({ issuer: standinIssuerUrl(env.STANDIN_URL, issuerName), audience: AUDIENCE }),
    ...claims,
  });
  const res = await app.request(
    `https://gatepass.test/v1/whoami${query}`,
    { headers: { Authorization: `Bearer ${token}` } },
    env,
  );
  return { status: res.status, ...((await res.json()) as Record<string, unknown>) };
}

describe("GET /v1/whoami grants", () => {
  it("lists every target the token may use with the rule granting it", async () => {
    const body = await whoami({
      project_path: "platform/infra",
      ref: "main",
      ref_type: "branch",
      ref_protected: "true",
    });
    expect(body.status).toBe(200);
    expect(body.grants).toEqual([
      { target: "deployer", rule: "infra-main" },
      { target: "reader", rule: "platform-reads" },
    ]);
    expect(body.policy_version).toMatch(/^[0-9a-f]{64}$/);
  });

  it("grants nothing from an unprotected ref and explains why in the token's own claims", async () => {
    const body = await whoami(
      { project_path: "platform/infra", ref: "feature", ref_type: "branch", ref_protected: "false" },
      "?target=deployer",
    );
    expect(body.grants).toEqual([{ target: "reader", rule: "platform-reads" }]);
    expect(body.explain).toMatchObject({ target: "deployer", allowed: false });
    const failures = body.explain.rules[0].failures as { claim: string; actual: unknown }[];
    expect(failures).toEqual(
      expect.arrayContaining([
        { claim: "ref", actual: "feature" },
        { claim: "ref_protected", actual: "false" },
      ]),
    );
  });

  it("never reveals another rule's patterns", async () => {
    const res = await whoami({ project_path: "platform/infra" }, "?target=secret-rule-target");
    expect(res.explain.allowed).toBe(false);
    const text = JSON.stringify(res);
    expect(text).not.toContain("vault-of-secrets");
    expect(text).not.toContain("v*");
  });

  it("explains only the rules the policy index finds for the job: a rule scoped to another project is not listed, not even by name", async () => {
    const res = await whoami(
      { project_path: "platform/infra", ref: "v1", ref_type: "tag" },
      "?target=secret-rule-target",
    );
    expect(res.explain).toEqual({ target: "secret-rule-target", allowed: false, rules: [] });
    expect(JSON.stringify(res)).not.toContain("hidden");
    const own = await whoami(
      { project_path: "secret/vault-of-secrets", ref: "main", ref_type: "branch" },
      "?target=secret-rule-target",
    );
    expect(own.explain.rules).toEqual([
      {
        rule: "hidden",
        matched: false,
        failures: [
          { claim: "ref", actual: "main" },
          { claim: "ref_type", actual: "branch" },
        ],
      },
    ]);
  });

  it("refuses to explain an unknown target with target_unknown", async () => {
    const body = await whoami({}, "?target=nope");
    expect(body).toMatchObject({ status: 404, code: "target_unknown" });
  });
});

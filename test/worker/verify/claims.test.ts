// Claims: which ones gatepass reads (typed and bounded: a bad one refuses the token), which it only
// carries (left out when too large, never fatal), GitLab's id typing, GitLab's current claim list
// (jwt.rb, jwt_v2.rb), and whole-second times in what gatepass mints.
import { describe, expect, it } from "vitest";
import { MAX_CLAIM_ARRAY_LENGTH, MAX_CLAIM_VALUE_LENGTH } from "../../../src/limits";
import { buildClaims, COPIED_CI_CLAIMS } from "../../../src/mint/minted-token";
import { normalizePolicy } from "../../../src/policy/policy-schema";
import { GITLAB_CLAIMS } from "../../../src/policy/rule-schema";
import { GITLAB_TOKEN_CLAIMS, normalizeClaims } from "../../../src/verify/claim-normalisation";
import { signToken } from "../../support/tokens";
import { createHarness, expectCode, standinIssuer } from "./harness";

const long = "x".repeat(MAX_CLAIM_VALUE_LENGTH + 1);
const tooMany = (prefix: string) => Array.from({ length: MAX_CLAIM_ARRAY_LENGTH + 1 }, (_, i) => `${prefix}${i}`);

describe("claims gatepass does not read", () => {
  it("never refuse the token: user_identities over the list cap is left out", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const identities = Array.from({ length: MAX_CLAIM_ARRAY_LENGTH + 1 }, (_, i) => ({
      provider: "s",
      extern_uid: `${i}`,
    }));
    const identity = await h.verifier.verify(
      await iss.token({ user_identities: identities }),
      [iss.config],
      h.env,
      h.waitUntil,
    );
    expect(identity.claims).not.toHaveProperty("user_identities");
    expect(identity.claims).toMatchObject({ project_path: "platform/infra" });
  });

  it("are left out over the caps (a long string, a long list, a list with a long item) and kept within them", () => {
    const claims = normalizeClaims({
      sub: "x",
      note: long,
      tags: tooMany("t"),
      refs: ["a", long],
      ok: "fine",
      few: ["a", 1],
    });
    expect(claims).toEqual({ sub: "x", ok: "fine", few: ["a", "1"] });
  });

  it("a rule naming one that was left out never matches: the value is missing, not truncated", () => {
    const claims = normalizeClaims({ sub: "x", team: long }, "generic");
    expect(claims.team).toBeUndefined();
  });
});

describe("claims gatepass reads (policy, audit, minted tokens)", () => {
  it.each(["ci_config_ref_uri", "project_path", "ref", "environment", "sub", "job_config_url"])(
    "refuse the token when %s is over the cap",
    (name) => {
      expect(() => normalizeClaims({ [name]: long })).toThrow(
        expect.objectContaining({ code: "claims_invalid", details: { claim: name } }),
      );
    },
  );

  it("refuse the token for a list over the cap (groups_direct, aud)", () => {
    for (const name of ["groups_direct", "aud"]) {
      expect(() => normalizeClaims({ [name]: tooMany("g") })).toThrow(
        expect.objectContaining({ code: "claims_invalid", details: { claim: name } }),
      );
    }
  });

  it("are every claim rules may name, every audit column and every claim copied into minted tokens", () => {
    const audited = [
      "jti",
      "project_id",
      "project_path",
      "namespace_id",
      "namespace_path",
      "ref",
      "ref_type",
      "pipeline_id",
      "job_id",
      "user_login",
    ];
    for (const name of [...GITLAB_CLAIMS, ...audited, ...COPIED_CI_CLAIMS])
      expect(GITLAB_TOKEN_CLAIMS, name).toHaveProperty(name);
  });
});

describe("GitLab ids", () => {
  const ids = [
    "project_id",
    "pipeline_id",
    "job_id",
    "namespace_id",
    "runner_id",
    "user_id",
    "job_project_id",
    "job_namespace_id",
  ];

  it.each(ids)("%s must be decimal digits or a whole number", (name) => {
    for (const bad of [
      false,
      true,
      "false",
      "",
      " 42",
      "42 ",
      "+42",
      "-1",
      "042",
      "4.2",
      "0x2a",
      "1e3",
      4.2,
      -1,
      { id: 1 },
      ["42"],
    ]) {
      if (name === "user_id" && bad === "") continue;
      expect(() => normalizeClaims({ [name]: bad }), `${name}: ${JSON.stringify(bad)}`).toThrow(
        expect.objectContaining({ code: "claims_invalid", details: { claim: name } }),
      );
    }
    expect(normalizeClaims({ [name]: "42" })).toEqual({ [name]: "42" });
    expect(normalizeClaims({ [name]: 42 })).toEqual({ [name]: "42" });
    expect(normalizeClaims({ [name]: "0" })).toEqual({ [name]: "0" });
  });

  it("user_id may be empty, as GitLab sends it for jobs without a user", () => {
    expect(normalizeClaims({ user_id: "" })).toEqual({ user_id: "" });
  });

  it('a token with job_id: false is refused, not turned into "false" (which passed the CI-token check)', async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    await expectCode(
      h.verifier.verify(await iss.token({ job_id: false }), [iss.config], h.env, h.waitUntil),
      "claims_invalid",
    );
    await expectCode(
      h.verifier.verify(await iss.token({ project_id: true }), [iss.config], h.env, h.waitUntil),
      "claims_invalid",
    );
  });

  it("a generic issuer's claims of the same names are not GitLab ids (Buildkite's job_id is a UUID)", () => {
    expect(normalizeClaims({ job_id: "0190b6c4-2a3e-4c1a-9d1e-3f4a5b6c7d8e" }, "generic")).toEqual({
      job_id: "0190b6c4-2a3e-4c1a-9d1e-3f4a5b6c7d8e",
    });
  });
});

describe("GitLab's claim list", () => {
  // lib/gitlab/ci/jwt.rb, lib/gitlab/ci/jwt_v2.rb, lib/json_web_token/user_project_token_claims.rb
  const current = [
    "target_audience",
    "jti",
    "job_project_id",
    "job_project_path",
    "job_namespace_id",
    "job_namespace_path",
    "environment_action",
    "job_source",
    "job_config_url",
    "job_config_sha",
  ];

  it.each(current)("lets rules for a gitlab issuer name %s", (claim) => {
    const { problems } = normalizePolicy(
      [
        {
          name: "policy.yaml",
          value: {
            issuers: [{ name: "corp-gitlab", url: "https://gitlab.example.com", audiences: ["gatepass"] }],
            targets: [{ name: "t", type: "oidc", audience: "a" }],
            rules: [{ name: "r", issuer: "corp-gitlab", match: { project_id: "42", [claim]: "x" }, allow: ["t"] }],
          },
        },
      ],
      "source",
    );
    expect(problems).toEqual([]);
  });

  it("still refuses a typo and the object job_config itself, saying what to name instead", () => {
    const rule = (match: Record<string, unknown>) =>
      normalizePolicy(
        [
          {
            name: "policy.yaml",
            value: {
              issuers: [{ name: "corp-gitlab", url: "https://gitlab.example.com", audiences: ["gatepass"] }],
              targets: [{ name: "t", type: "oidc", audience: "a" }],
              rules: [{ name: "r", issuer: "corp-gitlab", match: { project_id: "42", ...match }, allow: ["t"] }],
            },
          },
        ],
        "source",
      ).problems.map((p) => p.message);
    expect(rule({ target_audiance: "x" })).toEqual([
      expect.stringContaining("'target_audiance' is not a GitLab CI token claim"),
    ]);
    expect(rule({ job_config: "x" })).toEqual([expect.stringContaining("job_config_url and job_config_sha")]);
  });

  it("reads job_config { url, sha } (GitLab 18.9) as job_config_url and job_config_sha, and copies them into minted tokens", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const url = "gitlab.example.com/platform/ci-templates//deploy.yml@refs/heads/main";
    const sha = "b".repeat(40);
    const identity = await h.verifier.verify(
      await iss.token({ job_config: { url, sha, future: { x: 1 } } }),
      [iss.config],
      h.env,
      h.waitUntil,
    );
    expect(identity.claims).toMatchObject({ job_config_url: url, job_config_sha: sha });
    expect(identity.claims).not.toHaveProperty("job_config");
    const minted = buildClaims({
      issuer: "https://gatepass.example.com",
      identity,
      rule: "r",
      now: h.now(),
      lifetimeSeconds: 300,
      target: {
        name: "t",
        type: "oidc",
        audience: "a",
        privileged: false,
        signing_alg: "ES256",
        max_lifetime_seconds: 3600,
      },
    });
    expect(minted).toMatchObject({ job_config_url: url, job_config_sha: sha });
  });

  it("refuses a job_config that is not an object of strings, or that a token also spells out flat", () => {
    for (const bad of ["url", ["url"], { url: Number.POSITIVE_INFINITY }, { url: { a: 1 } }, { sha: long }]) {
      expect(() => normalizeClaims({ job_config: bad }), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: "claims_invalid" }),
      );
    }
    expect(() => normalizeClaims({ job_config: { url: "a" }, job_config_url: "b" })).toThrow(
      expect.objectContaining({ code: "claims_invalid", details: { claim: "job_config_url" } }),
    );
  });

  it("keeps claims GitLab may add in future, as it keeps any claim gatepass does not read", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const identity = await h.verifier.verify(
      await iss.token({ job_policy_ref_uri: "gitlab.example.com/sec/policies//p.yml@refs/heads/main" }),
      [iss.config],
      h.env,
      h.waitUntil,
    );
    expect(identity.claims).toMatchObject({
      job_policy_ref_uri: "gitlab.example.com/sec/policies//p.yml@refs/heads/main",
    });
  });
});

describe("times", () => {
  it("a fractional exp becomes whole seconds in the identity and in the minted token (exp, and so expires_in)", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const now = h.now();
    const token = await signToken(iss.key, {
      ...(await claimsOf(iss.token)),
      iat: now + 0.25,
      exp: now + 100.5,
      nbf: now - 5,
    });
    const identity = await h.verifier.verify(token, [iss.config], h.env, h.waitUntil);
    expect(identity).toMatchObject({ issuedAt: now, expiresAt: now + 100 });
    const minted = buildClaims({
      issuer: "https://gatepass.example.com",
      identity: { ...identity, expiresAt: now + 100.5 },
      rule: "r",
      now: now + 0.75,
      lifetimeSeconds: 300,
      target: {
        name: "t",
        type: "oidc",
        audience: "a",
        privileged: false,
        signing_alg: "ES256",
        max_lifetime_seconds: 3600,
      },
    });
    expect(minted).toMatchObject({ iat: now, nbf: now, exp: now + 100 });
    for (const time of [minted.iat, minted.nbf, minted.exp]) expect(Number.isInteger(time)).toBe(true);
  });
});

/** The payload a test issuer's token carries, to sign a variant of it. */
async function claimsOf(token: () => Promise<string>): Promise<Record<string, unknown>> {
  const [, payload] = (await token()).split(".");
  return JSON.parse(
    new TextDecoder().decode(
      Uint8Array.from(atob(payload!.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)),
    ),
  ) as Record<string, unknown>;
}

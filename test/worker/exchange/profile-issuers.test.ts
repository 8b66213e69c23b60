// The shipped issuer profiles end to end in workerd, the way github-issuer.test.ts tests kind github:
// tokens shaped as Buildkite and CircleCI document them, verified against the loopback stand-in issuer,
// a rule scoped by the profile's project id (found through the index), explained by whoami, and
// exchanged for a gatepass token carrying the profile's `copy` claims.
import { decodeJwt } from "jose";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SHIPPED_PROFILES } from "../../../src/verify/issuer-kinds/ci-profiles";
import { buildkiteClaims, circleciClaims } from "../../support/tokens";
import { bearer, createHarness, FORM, type Harness } from "./app-harness";

/** The claims a stand-in token carries, minus what the harness sets (iss, aud and the times). */
function withoutRegistered(claims: Record<string, unknown>): Record<string, unknown> {
  const { iss: _iss, aud: _aud, iat: _iat, nbf: _nbf, exp: _exp, ...rest } = claims;
  return rest;
}

const CASES = [
  {
    profile: "buildkite",
    claims: withoutRegistered(buildkiteClaims({ issuer: "unused" })),
    match: {
      organization_id: "0184990a-477b-4fa8-9968-496074483a77",
      pipeline_id: "0184990a-4782-42b5-afc1-16715b10b1a0",
      build_branch: "main",
    },
    copied: {
      organization_slug: "acme-inc",
      pipeline_id: "0184990a-4782-42b5-afc1-16715b10b1a0",
      build_branch: "main",
      job_id: "0184990a-477b-4fa8-9968-496074483cee",
    },
    other: { pipeline_id: "0184990a-4782-42b5-afc1-16715b10b1ff" },
    failing: "pipeline_id",
  },
  {
    profile: "circleci",
    claims: withoutRegistered(circleciClaims({ issuer: "unused" })),
    match: {
      "oidc.circleci.com/project-id": "5e1a0000-0000-4000-8000-000000000002",
      "oidc.circleci.com/ssh-rerun": "false",
    },
    copied: {
      "oidc.circleci.com/project-id": "5e1a0000-0000-4000-8000-000000000002",
      "oidc.circleci.com/vcs-ref": "refs/heads/main",
    },
    other: { "oidc.circleci.com/ssh-rerun": true },
    failing: "oidc.circleci.com/ssh-rerun",
  },
] as const;

describe.each(CASES)("profile $profile", ({ profile, claims, match, copied, other, failing }) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({
      issuer: { kind: "generic", profile: SHIPPED_PROFILES.get(profile)! },
      ciClaims: claims,
      rule: { name: `${profile}-deploys`, match },
    });
  });
  beforeEach(async () => {
    await h.scenario();
  });

  it("verifies the token, grants by the profile's project id, and copies the profile's claims into the minted token", async () => {
    const whoami = (await (await h.request("/v1/whoami", { headers: bearer(await h.ciToken()) })).json()) as {
      grants: { rule: string }[];
    };
    expect(whoami.grants.map((g) => g.rule)).toContain(`${profile}-deploys`);
    const res = await h.request("/v1/credentials/oidc-any", {
      method: "POST",
      headers: bearer(await h.ciToken(), FORM),
      body: "",
    });
    expect(res.status).toBe(200);
    const minted = decodeJwt(((await res.json()) as { id_token: string }).id_token);
    expect(minted).toMatchObject({ ...copied, rule: `${profile}-deploys` });
    expect(minted).not.toHaveProperty("project_id");
  });

  it("denies another project (or an untrusted run) and explains the claim that failed", async () => {
    const token = await h.ciToken(other);
    const res = await h.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer(token, FORM), body: "" });
    expect(((await res.json()) as { code: string }).code).toBe("policy_denied");
    const explained = (await (await h.request("/v1/whoami?target=oidc-any", { headers: bearer(token) })).json()) as {
      explain: { rules: { failures: { claim: string }[] }[] };
    };
    expect(explained.explain.rules.flatMap((r) => r.failures.map((f) => f.claim))).toContain(failing);
  });
});

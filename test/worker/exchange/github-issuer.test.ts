// A `kind: github` issuer end to end in workerd: tokens shaped like GitHub Actions' (test/support/tokens.ts
// githubClaims, from GitHub's OIDC reference), signed by the loopback stand-in issuer and verified with
// keys from its discovery; the policy's rule found through the index by repository_id, explained by
// whoami, and exchanged for a gatepass token that carries GitHub's claims (not GitLab's).
import { decodeJwt } from "jose";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { githubClaims } from "../../support/tokens";
import { compilePolicy } from "../../../src/policy/compile-policy";
import { bearer, createHarness, FORM, type Harness } from "./app-harness";

let h: Harness;

/** GitHub's claims for this file's issuer, minus what the harness sets (iss, aud and the times). */
function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { iss: _iss, aud: _aud, iat: _iat, nbf: _nbf, exp: _exp, ...rest } = githubClaims({ issuer: "unused" });
  return { ...rest, ...overrides };
}

beforeAll(async () => {
  h = await createHarness({
    issuer: { kind: "github" },
    ciClaims: claims(),
    rule: {
      name: "infra-github-main",
      match: {
        repository_id: "701",
        ref: "refs/heads/main",
        ref_protected: "true",
        event_name: ["push", "workflow_dispatch", "schedule"],
      },
    },
  });
});

beforeEach(async () => {
  await h.scenario();
});

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

describe("a GitHub Actions issuer (kind: github)", () => {
  it("verifies a GitHub-shaped token and shows its claims and grants in whoami", async () => {
    const res = await h.request("/v1/whoami", { headers: bearer(await h.ciToken()) });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({
      issuer: "ci",
      claims: { repository: "platform/infra", repository_id: "701", event_name: "push", ref_protected: "true" },
    });
    expect((body.grants as { rule: string }[]).map((g) => g.rule)).toContain("infra-github-main");
  });

  it("mints a token carrying GitHub's claims, copied as the issuer's vocabulary says", async () => {
    const res = await h.request("/v1/credentials/oidc-any", {
      method: "POST",
      headers: bearer(await h.ciToken(), FORM),
      body: "lifetime=120",
    });
    expect(res.status).toBe(200);
    const minted = decodeJwt(((await json(res)) as { id_token: string }).id_token);
    expect(minted).toMatchObject({
      repository: "platform/infra",
      repository_id: "701",
      repository_owner_id: "70",
      event_name: "push",
      ref: "refs/heads/main",
      workflow_ref: expect.stringContaining("deploy.yml"),
      rule: "infra-github-main",
    });
    expect(minted).not.toHaveProperty("actor");
    expect(minted).not.toHaveProperty("project_id");
  });

  it("denies a pull_request_target run on the protected base branch, and explains which claim failed", async () => {
    const token = await h.ciToken({ event_name: "pull_request_target", head_ref: "fork-feature", base_ref: "main" });
    const res = await h.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer(token, FORM), body: "" });
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe("policy_denied");
    const explained = await json(await h.request("/v1/whoami?target=oidc-any", { headers: bearer(token) }));
    expect(explained.explain).toMatchObject({
      allowed: false,
      rules: [
        {
          rule: "infra-github-main",
          matched: false,
          failures: [{ claim: "event_name", actual: "pull_request_target" }],
        },
      ],
    });
  });

  it("refuses a token without GitHub's repository and run ids (not a workflow job token)", async () => {
    const res = await h.request("/v1/whoami", {
      headers: bearer(await h.ciToken({ repository_id: undefined, run_id: undefined })),
    });
    expect(res.status).toBe(401);
    expect(await json(res)).toMatchObject({
      code: "not_a_ci_token",
      error_description: expect.stringMatching(/GitHub Actions job token/),
    });
  });

  it("refuses ids GitHub would never send (claims_invalid), so '701 ' or 701.0 cannot pass for 701", async () => {
    for (const repository_id of ["701 ", "0701", 7.01, true]) {
      const res = await h.request("/v1/whoami", { headers: bearer(await h.ciToken({ repository_id })) });
      expect(await json(res), String(repository_id)).toMatchObject({ code: "claims_invalid" });
    }
  });

  it("files rules under repository_id in the index (the condition fewest rules share), so a token looks only at its repository's rules", async () => {
    const rule = (name: string, repository_id: string) => ({
      name,
      issuer: "ci",
      match: { repository_id, ref_protected: "true" },
      allow: ["t"],
    });
    const policy = compilePolicy({
      format: 1,
      version: "0".repeat(64),
      source_digest: "0".repeat(64),
      created_at: "2026-01-01T00:00:00Z",
      issuers: [],
      targets: [],
      rules: [rule("a", "701"), rule("b", "702"), rule("c", "703")],
    });
    const found = (repository_id: string) => {
      const orders: number[] = [];
      policy.candidates("ci", { repository_id, ref_protected: "true" }, (order) => orders.push(order));
      return orders;
    };
    expect(found("702")).toEqual([1]);
    expect(found("999")).toEqual([]);
  });
});

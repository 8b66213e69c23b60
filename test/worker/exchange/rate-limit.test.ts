// Rate limit per issuer + project on credential requests and whoami: 429 rate_limited with Retry-After, per project.
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { RATE_LIMIT_PERIOD_SECONDS } from "../../../src/limits";
import { enforceRateLimit } from "../../../src/exchange/request-rate-limit";
import type { VerifiedIdentity } from "../../../src/types";
import { bearer, createHarness, FORM, type Harness } from "./app-harness";
import { SA } from "./fixtures";

let h: Harness;
const overLimit = { limit: async () => ({ success: false }) };

beforeAll(async () => {
  h = await createHarness();
  await h.scenario();
});

describe("rate limits", () => {
  it("refuses a project over its limit with rate_limited and Retry-After, keyed by issuer and project", async () => {
    const seen: string[] = [];
    const limiter = { limit: async ({ key }: { key: string }) => (seen.push(key), { success: seen.length <= 2 }) };
    const res = async (projectId: string) =>
      h.request(
        "/v1/credentials/oidc-any",
        { method: "POST", headers: bearer(await h.ciToken({ project_id: projectId })) },
        { RATE_LIMITER: limiter },
      );
    expect((await res("42")).status).toBe(200);
    expect((await res("42")).status).toBe(200);
    const refused = await res("42");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("Retry-After")).toBe(String(RATE_LIMIT_PERIOD_SECONDS));
    // Repeated in the body for curl-only clients (the CI template waits this long before its retry).
    expect(await refused.json()).toMatchObject({ code: "rate_limited", retry_after: RATE_LIMIT_PERIOD_SECONDS });
    expect(new Set(seen)).toEqual(new Set(["ci\u000042"]));
  });

  it("limits the Sapro-compatible GET /access too", async () => {
    const res = await h.request(
      `/access?sa=${SA}`,
      { headers: { "Gitlab-Token": await h.ciToken() } },
      { RATE_LIMITER: overLimit },
    );
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ code: "rate_limited" });
  });

  it("limits GET /v1/whoami too, from the same per-project budget", async () => {
    const res = await h.request(
      "/v1/whoami?target=oidc-any",
      { headers: bearer(await h.ciToken()) },
      { RATE_LIMITER: overLimit },
    );
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ code: "rate_limited" });
  });

  it("keeps 429 and Retry-After on the OAuth token endpoint", async () => {
    const body = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: await h.ciToken(),
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      audience: "oidc-any",
    }).toString();
    const res = await h.request("/v1/token", { method: "POST", headers: FORM, body }, { RATE_LIMITER: overLimit });
    expect(res.status).toBe(429);
    expect(res.headers.get("Retry-After")).toBe(String(RATE_LIMIT_PERIOD_SECONDS));
    expect(await res.json()).toMatchObject({ code: "rate_limited" });
  });

  it("applies no limit when the Worker has no RATE_LIMITER binding (removed from wrangler.toml)", async () => {
    const identity = { issuer: "ci", claims: { project_id: "42" } } as unknown as VerifiedIdentity;
    await expect(enforceRateLimit({ ...env, RATE_LIMITER: undefined }, identity)).resolves.toBeUndefined();
  });

  it("uses the real Workers rate limiting binding from wrangler.toml", async () => {
    expect(env.RATE_LIMITER).toBeDefined();
    const identity = { issuer: "ci", claims: { project_id: crypto.randomUUID() } } as unknown as VerifiedIdentity;
    await expect(enforceRateLimit(env, identity)).resolves.toBeUndefined();
  });
});

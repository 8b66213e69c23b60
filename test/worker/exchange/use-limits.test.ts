// max_uses_per_job: a rule's per-job limit is counted in D1 and enforced; other jobs are unaffected.
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../../src/config";
import { countUse } from "../../../src/exchange/use-limits";
import type { VerifiedIdentity } from "../../../src/types";
import { bearer, createHarness, type Harness } from "./app-harness";

let h: Harness;

beforeAll(async () => {
  h = await createHarness({ rule: { max_uses_per_job: 2 } });
  await h.scenario();
});

const exchange = async (token: string) => {
  const res = await h.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer(token) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe("max_uses_per_job", () => {
  it("allows a job its limit, then refuses with use_limit_exceeded (429)", async () => {
    const token = await h.ciToken({ job_id: "5001" });
    expect((await exchange(token)).status).toBe(200);
    expect((await exchange(token)).status).toBe(200);
    expect(await exchange(token)).toMatchObject({ status: 429, body: { code: "use_limit_exceeded" } });
    // Another job of the same pipeline has its own count.
    expect((await exchange(await h.ciToken({ job_id: "5002" }))).status).toBe(200);
  });

  it("fails closed with use_limit_unavailable when D1 cannot count, keeping D1's error for the log", async () => {
    const down = new Error("D1 is down");
    const brokenDb = {
      prepare: () => {
        throw down;
      },
    } as unknown as D1Database;
    const identity = { issuer: "ci", claims: { job_id: "1" }, expiresAt: 1 } as unknown as VerifiedIdentity;
    await expect(countUse({ ...env, DB: brokenDb } as Env, identity, "oidc-any", 5)).rejects.toMatchObject({
      code: "use_limit_unavailable",
      cause: down,
    });
  });

  it("fails closed with use_limit_unavailable when D1 returns no count", async () => {
    const statement = { bind: () => statement, first: async () => null };
    const silentDb = { prepare: () => statement } as unknown as D1Database;
    const identity = { issuer: "ci", claims: { job_id: "1" }, expiresAt: 1 } as unknown as VerifiedIdentity;
    await expect(countUse({ ...env, DB: silentDb } as Env, identity, "oidc-any", 5)).rejects.toMatchObject({
      code: "use_limit_unavailable",
    });
  });

  // Only generic issuers' tokens can lack job_id: a limited target is refused, never left unlimited.
  it("refuses a token without job_id with use_limit_exceeded", async () => {
    const identity = { issuer: "ci", claims: { project_id: "42" }, expiresAt: 1 } as unknown as VerifiedIdentity;
    await expect(countUse(env as Env, identity, "oidc-any", 5)).rejects.toMatchObject({ code: "use_limit_exceeded" });
  });
});

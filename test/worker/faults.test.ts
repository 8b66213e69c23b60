// The fault suite, end to end through the app: when KV or D1 fail, gatepass keeps serving what it
// safely can (last good policy snapshot, cached keys) and never drops an audit event silently.
import { describe, expect, it } from "vitest";
import { POLICY_RECHECK_MS } from "../../src/limits";
import { bearer, createHarness } from "./exchange/app-harness";

const failingKv = {
  get: async () => {
    throw new Error("KV unavailable");
  },
  put: async () => {
    throw new Error("KV unavailable");
  },
  delete: async () => {
    throw new Error("KV unavailable");
  },
  list: async () => {
    throw new Error("KV unavailable");
  },
  getWithMetadata: async () => {
    throw new Error("KV unavailable");
  },
};
const failingDb = {
  prepare: () => {
    throw new Error("D1 unavailable");
  },
  batch: async () => {
    throw new Error("D1 unavailable");
  },
};

describe("faults", () => {
  it("KV down: a warm isolate keeps serving its last good snapshot and cached keys", async () => {
    let now = Date.now();
    const h = await createHarness({ deps: { now: () => now } });
    await h.scenario();
    const token = await h.ciToken();
    const exchange = (vars: Record<string, unknown> = {}) =>
      h.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer(token) }, vars);
    expect((await exchange()).status).toBe(200); // warm: policy and keys in memory
    now += POLICY_RECHECK_MS + 1; // due for a background re-check, which will fail
    const down = { POLICIES: failingKv, JWKS: failingKv };
    expect((await exchange(down)).status).toBe(200);
    expect((await exchange(down)).status).toBe(200);
  });

  it("KV down on a cold isolate: fails closed with policy_unavailable", async () => {
    const h = await createHarness();
    const res = await h.request(
      "/v1/credentials/oidc-any",
      { method: "POST", headers: bearer(await h.ciToken()) },
      { POLICIES: failingKv },
    );
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ code: "policy_unavailable" });
  });

  it("D1 down: credentials are still issued and the audit event goes to the log in full", async () => {
    const h = await createHarness();
    await h.scenario();
    const token = await h.ciToken();
    h.takeLogs();
    const res = await h.request(
      "/v1/credentials/oidc-any",
      { method: "POST", headers: bearer(token) },
      { DB: failingDb },
    );
    expect(res.status).toBe(200);
    const requestId = res.headers.get("X-Request-Id")!;
    const fallback = h
      .takeLogs()
      .split("\n")
      .filter((line) => line.includes('"audit_write_failed"'))
      .map((line) => JSON.parse(line.slice(line.indexOf("{"))));
    expect(fallback).toHaveLength(1);
    expect(fallback[0].audit).toMatchObject({
      request_id: requestId,
      decision: "allow",
      target: "oidc-any",
      rule: "infra-main",
    });
    expect(fallback[0].audit.token_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(fallback[0])).not.toContain(token);
  });
});

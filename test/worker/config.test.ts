// A misconfigured gatepass serves nothing: every request, /healthz first (a deploy's first check),
// answers 503 config_invalid, and the log says what to fix. wrangler.toml ships a loopback
// GATEPASS_ISSUER that only local runs (GATEPASS_ENV=development) accept.
import { createExecutionContext, createScheduledController, env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { UPSTREAM_VARS, type Env } from "../../src/config";
import worker from "../../src/index";
import { bearer, createHarness } from "./exchange/app-harness";

// Production mode: no GATEPASS_ENV, and the harness's loopback upstream stand-ins unset (they are development-only).
const PRODUCTION = { GATEPASS_ENV: undefined, ...Object.fromEntries(UPSTREAM_VARS.map((name) => [name, undefined])) };

const logEvents = (logs: string) =>
  logs
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("configuration", () => {
  it("refuses an http:// GATEPASS_ISSUER outside development: 503 config_invalid on every route, the reason in the log", async () => {
    const h = await createHarness();
    await h.scenario();
    const unedited = { GATEPASS_ENV: undefined, GATEPASS_ISSUER: "http://127.0.0.1:8787" };
    h.takeLogs();
    for (const [path, init] of [
      ["/healthz", {}],
      ["/.well-known/openid-configuration", {}],
      ["/v1/credentials/oidc-any", { method: "POST", headers: bearer(await h.ciToken()) }],
    ] as const) {
      const res = await h.request(path, init, unedited);
      expect(res.status, path).toBe(503);
      expect(await res.json(), path).toMatchObject({ code: "config_invalid", error: "server_error" });
    }
    const refusals = logEvents(h.takeLogs()).filter((entry) => entry.event === "config_invalid");
    expect(refusals).toHaveLength(3);
    expect(refusals[0]).toMatchObject({
      level: "error",
      reason: expect.stringContaining(
        'GATEPASS_ISSUER is "http://127.0.0.1:8787": set it to gatepass\'s public https:// URL',
      ),
    });
  });

  it("in development, accepts http:// only on loopback", async () => {
    const h = await createHarness();
    expect(
      (await h.request("/healthz", {}, { GATEPASS_ENV: "development", GATEPASS_ISSUER: "http://127.0.0.1:8787" }))
        .status,
    ).toBe(200);
    const offLoopback = await h.request(
      "/healthz",
      {},
      { GATEPASS_ENV: "development", GATEPASS_ISSUER: "http://gatepass.example.com" },
    );
    expect(offLoopback.status).toBe(503);
    expect(await offLoopback.json()).toMatchObject({ code: "config_invalid" });
  });

  it("GATEPASS_POLICY_RECHECK=every-request is for development only: refused on a production Worker, and any other value everywhere", async () => {
    const h = await createHarness();
    const production = { ...PRODUCTION, GATEPASS_ISSUER: "https://gatepass.example.com" };
    const development = { GATEPASS_ENV: "development", GATEPASS_ISSUER: "http://127.0.0.1:8787" };
    expect((await h.request("/healthz", {}, { ...development, GATEPASS_POLICY_RECHECK: "every-request" })).status).toBe(
      200,
    );
    h.takeLogs();
    for (const vars of [
      { ...production, GATEPASS_POLICY_RECHECK: "every-request" },
      { ...development, GATEPASS_POLICY_RECHECK: "always" },
    ]) {
      const res = await h.request("/healthz", {}, vars);
      expect(res.status, vars.GATEPASS_POLICY_RECHECK).toBe(503);
      expect(await res.json()).toMatchObject({ code: "config_invalid" });
    }
    const refusals = logEvents(h.takeLogs()).filter((entry) => entry.event === "config_invalid");
    expect(refusals.map((entry) => entry.reason)).toEqual([
      expect.stringContaining("set on a production Worker"),
      expect.stringContaining('the only value is "every-request"'),
    ]);
  });

  it("refuses an issuer URL with a query, fragment or credentials, and a missing one", async () => {
    const h = await createHarness();
    expect(
      (await h.request("/healthz", {}, { ...PRODUCTION, GATEPASS_ISSUER: "https://gatepass.example.com" })).status,
    ).toBe(200);
    for (const url of [
      "https://gatepass.example.com/?x=1",
      "https://gatepass.example.com/#x",
      "https://user:pw@gatepass.example.com",
      "",
      undefined,
    ]) {
      const res = await h.request("/healthz", {}, { ...PRODUCTION, GATEPASS_ISSUER: url });
      expect(res.status, String(url)).toBe(503);
      expect(await res.json()).toMatchObject({ code: "config_invalid" });
    }
  });

  it("refuses an issuer URL with a path: relying parties would look for discovery where gatepass does not serve it", async () => {
    const h = await createHarness();
    await h.scenario();
    h.takeLogs();
    for (const url of ["https://example.com/gatepass", "https://example.com/gatepass/"]) {
      const res = await h.request("/.well-known/openid-configuration", {}, { ...PRODUCTION, GATEPASS_ISSUER: url });
      expect(res.status, url).toBe(503);
      expect(await res.json(), url).toMatchObject({ code: "config_invalid" });
    }
    const [refusal] = logEvents(h.takeLogs()).filter((entry) => entry.event === "config_invalid");
    expect(refusal).toMatchObject({ reason: expect.stringContaining("give gatepass's origin without a path") });
    expect(
      (await h.request("/healthz", {}, { ...PRODUCTION, GATEPASS_ISSUER: "https://gatepass.example.com/" })).status,
    ).toBe(200);
  });

  it("runs no cron job either: the run fails with the reason logged, and no storage or issuer is touched", async () => {
    const touched: string[] = [];
    const untouchable = (name: string) =>
      new Proxy(
        {},
        {
          get: (_target, member) => {
            touched.push(`${name}.${String(member)}`);
            throw new Error(`${name} touched`);
          },
        },
      );
    const misconfigured = {
      ...env,
      GATEPASS_ENV: undefined,
      JWKS: untouchable("JWKS"),
      POLICIES: untouchable("POLICIES"),
      DB: untouchable("DB"),
    } as unknown as Env;
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      await expect(
        worker.scheduled(createScheduledController({ cron: "*/5 * * * *" }), misconfigured, createExecutionContext()),
      ).rejects.toMatchObject({ code: "config_invalid" });
      expect(touched).toEqual([]);
      expect(errors.mock.calls.map(([line]) => JSON.parse(String(line)))).toEqual([
        expect.objectContaining({ event: "config_invalid", reason: expect.stringContaining("GATEPASS_ISSUER") }),
      ]);
    } finally {
      errors.mockRestore();
    }
  });
});

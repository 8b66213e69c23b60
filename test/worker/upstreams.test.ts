// The upstream overrides (docs/upstreams.md): GCP_STS_URL, GCP_IAM_CREDENTIALS_URL, AWS_STS_URL and
// AZURE_TOKEN_URL receive gatepass's minted tokens and answer with cloud credentials, so they follow the
// issuer URL's rule: https, or http on loopback in development only. Anything else is config_invalid.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { readConfig, UPSTREAM_VARS, type Env } from "../../src/config";
import { createHarness } from "./exchange/app-harness";

const UNSET = Object.fromEntries(UPSTREAM_VARS.map((name) => [name, undefined]));
const PRODUCTION = { ...UNSET, GATEPASS_ENV: undefined, GATEPASS_ISSUER: "https://gatepass.example.com" };
const DEVELOPMENT = { ...UNSET, GATEPASS_ENV: "development", GATEPASS_ISSUER: "http://127.0.0.1:8787" };

const logEvents = (logs: string) =>
  logs
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("upstream overrides", () => {
  it.each(UPSTREAM_VARS)(
    "%s over http:// outside development refuses the configuration (503 config_invalid), naming the variable",
    async (name) => {
      const h = await createHarness();
      h.takeLogs();
      const res = await h.request("/healthz", {}, { ...PRODUCTION, [name]: "http://127.0.0.1:9000/x" });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ code: "config_invalid" });
      const [refusal] = logEvents(h.takeLogs()).filter((entry) => entry.event === "config_invalid");
      expect(refusal).toMatchObject({ reason: expect.stringContaining(`${name} is "http://127.0.0.1:9000/x"`) });
    },
  );

  it("accepts https:// overrides in production, placeholders included, and uses them", async () => {
    const h = await createHarness();
    const overrides = {
      GCP_STS_URL: "https://sts.proxy.example.com/v1/token",
      GCP_IAM_CREDENTIALS_URL: "https://iam.proxy.example.com/v1/",
      AWS_STS_URL: "https://sts.{region}.{dns_suffix}.proxy.example.com/",
      AZURE_TOKEN_URL: "https://login.microsoftonline.us/{tenant}/oauth2/v2.0/token",
    };
    expect((await h.request("/healthz", {}, { ...PRODUCTION, ...overrides })).status).toBe(200);
    expect(readConfig({ ...env, ...PRODUCTION, ...overrides } as Env).upstreams).toEqual({
      gcpSts: overrides.GCP_STS_URL,
      gcpIamCredentials: "https://iam.proxy.example.com/v1",
      awsSts: overrides.AWS_STS_URL,
      azureToken: overrides.AZURE_TOKEN_URL,
    });
  });

  it("in development, accepts http:// on loopback (stand-ins, moto) but nowhere else", async () => {
    const h = await createHarness();
    expect(
      (
        await h.request(
          "/healthz",
          {},
          { ...DEVELOPMENT, AWS_STS_URL: "http://127.0.0.1:5000/{region}/", GCP_STS_URL: "http://localhost:9000/sts" },
        )
      ).status,
    ).toBe(200);
    const offLoopback = await h.request("/healthz", {}, { ...DEVELOPMENT, AWS_STS_URL: "http://moto.internal:5000/" });
    expect(offLoopback.status).toBe(503);
    expect(await offLoopback.json()).toMatchObject({ code: "config_invalid" });
  });

  it("refuses an override that is not a URL, or carries credentials, a query or a fragment", async () => {
    const h = await createHarness();
    for (const value of [
      "sts.googleapis.com",
      "https://user:pw@sts.example.com/",
      "https://sts.example.com/?x=1",
      "https://sts.example.com/#x",
      "ftp://sts.example.com/",
    ]) {
      const res = await h.request("/healthz", {}, { ...PRODUCTION, GCP_STS_URL: value });
      expect(res.status, value).toBe(503);
      expect(await res.json(), value).toMatchObject({ code: "config_invalid" });
    }
  });

  it("unset or empty, the clouds' public endpoints apply", () => {
    expect(readConfig({ ...env, ...PRODUCTION, AZURE_TOKEN_URL: "" } as Env).upstreams).toEqual({
      gcpSts: "https://sts.googleapis.com/v1/token",
      gcpIamCredentials: "https://iamcredentials.googleapis.com/v1",
      awsSts: "https://sts.{region}.{dns_suffix}/",
      azureToken: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    });
  });
});

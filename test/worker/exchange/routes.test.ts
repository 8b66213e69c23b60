// The credential endpoints end to end in workerd: real KV policy, real token verification against
// a loopback CI issuer, real upstream stand-ins that verify gatepass's signature via its JWKS.
import { Buffer } from "node:buffer";
import { SELF } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateKeyPair, SignJWT } from "jose";
import { bearer, CI_AUDIENCE, createHarness, FORM, type Harness } from "./app-harness";
import { auditEventsFor } from "../audit/events";
import { capturedRequests, CI_CLAIMS, ISSUER, SA, VAULT_ALGS } from "./fixtures";
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from "../../../src/routes/token-exchange-endpoint";
import { tokenDigest } from "../../../src/verify/verifier";
import { createApp, CREDENTIAL_GET_PATHS } from "../../../src/app";
import { UPSTREAM_VARS } from "../../../src/config";

/** Production mode refuses the harness's loopback upstream stand-ins (test/worker/upstreams.test.ts). */
const NO_UPSTREAM_OVERRIDES = Object.fromEntries(UPSTREAM_VARS.map((name) => [name, undefined]));

let h: Harness;
let token: string;
/** gatepass's clock when a test fixes it (and gives the stand-ins the same time); else the real one. */
let fixedNow: number | undefined;

beforeAll(async () => {
  h = await createHarness({ deps: { now: () => fixedNow ?? Date.now() } });
});

beforeEach(async () => {
  fixedNow = undefined;
  await h.scenario();
  token = await h.ciToken();
  h.takeLogs();
});

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

function post(path: string, body: string | undefined, headers: Record<string, string> = bearer(token, FORM)) {
  return h.request(path, { method: "POST", headers, body });
}

describe("discovery", () => {
  it("publishes the issuer configuration and only public keys, cacheable", async () => {
    const config = await h.request("/.well-known/openid-configuration");
    expect(config.status).toBe(200);
    expect(config.headers.get("Cache-Control")).toBe("public, max-age=300");
    expect(await json(config)).toMatchObject({
      issuer: ISSUER,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      id_token_signing_alg_values_supported: ["ES256", "RS256"],
    });
    const jwks = await h.request("/.well-known/jwks.json");
    expect(jwks.headers.get("Cache-Control")).toBe("public, max-age=300");
    const { keys } = (await jwks.json()) as { keys: Record<string, unknown>[] };
    expect(keys).toHaveLength(4);
    for (const key of keys)
      for (const member of ["d", "p", "q", "dp", "dq", "qi", "status", "created_at"])
        expect(key).not.toHaveProperty(member);
  });

  it("is served by the deployed Worker entry too (development keys without a secret)", async () => {
    const res = await SELF.fetch("https://gatepass.test/.well-known/jwks.json");
    expect(res.status).toBe(200);
    expect(((await res.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
  });

  it("fails closed without a signing key in production", async () => {
    const res = await h.request(
      "/.well-known/jwks.json",
      {},
      {
        GATEPASS_ENV: "production",
        ...NO_UPSTREAM_OVERRIDES,
        GATEPASS_ISSUER: "https://gatepass.example.com",
        GATEPASS_SIGNING_KEYS: undefined,
      },
    );
    expect(res.status).toBe(503);
    expect((await json(res)).code).toBe("signing_unavailable");
  });

  it("logs why the signing key secret is invalid, but sends only the documented error fields", async () => {
    const res = await h.request("/.well-known/jwks.json", {}, { GATEPASS_SIGNING_KEYS: '{"keys":[]}' });
    expect(res.status).toBe(503);
    const text = await res.text();
    const body = JSON.parse(text) as Record<string, unknown>;
    expect(body.code).toBe("signing_unavailable");
    expect(Object.keys(body).sort()).toEqual(["code", "error", "error_description", "request_id"]);
    // The error's internal cause (the parser's reason) stays in the log.
    expect(text).not.toContain("no current ES256 key");
    expect(h.takeLogs()).toContain("no current ES256 key");
  });
});

describe("POST /v1/credentials/:target", () => {
  it("gcp: impersonated access token as JSON, no-store, minted claims seen by the cloud", async () => {
    // One fixed clock for gatepass and the stand-ins: the lifetime is exact. With two real clocks, the
    // stand-in's second and workerd's could differ by one (it failed as `expected 1201 to be <= 1200`).
    fixedNow = Date.now();
    await h.scenario({ now: fixedNow });
    const res = await post("/v1/credentials/gcp-deploy", "lifetime=20m");
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const body = await json(res);
    expect(body).toMatchObject({
      target: "gcp-deploy",
      provider: "gcp",
      token_type: "Bearer",
      service_account: SA,
      scope: "https://www.googleapis.com/auth/cloud-platform",
    });
    expect(body.access_token).toMatch(/^ya29\.sa-/);
    expect(body.expires_in).toBe(1200);
    const [sts, iam] = await capturedRequests(h.ns);
    expect(sts!.claims).toMatchObject({
      iss: ISSUER,
      sub: "target:gcp-deploy",
      rule: "infra-main",
      project_path: "platform/infra",
      source_issuer: h.ciIssuerUrl,
    });
    expect(sts!.claims).not.toHaveProperty("user_email");
    expect(iam!.body.lifetime).toBe("1200s");
  });

  it("accepts JSON bodies and query parameters alike", async () => {
    const viaJson = await post(
      "/v1/credentials/gcp-deploy",
      JSON.stringify({ lifetime: 600 }),
      bearer(token, { "Content-Type": "application/json" }),
    );
    expect(viaJson.status).toBe(200);
    const viaJsonString = await post(
      "/v1/credentials/gcp-deploy",
      JSON.stringify({ lifetime: "10m" }),
      bearer(token, { "Content-Type": "application/json" }),
    );
    expect(viaJsonString.status).toBe(200);
    const viaQuery = await post("/v1/credentials/gcp-deploy?lifetime=600", undefined, bearer(token));
    expect(viaQuery.status).toBe(200);
    const lifetimes = (await capturedRequests(h.ns)).filter((r) => r.service === "gcp-iam").map((r) => r.body.lifetime);
    expect(lifetimes).toEqual(["600s", "600s", "600s"]);
  });

  it("aws: env, dotenv and credential_process", async () => {
    const env = await post("/v1/credentials/aws-deploy", "format=env");
    expect(env.headers.get("Content-Type")).toMatch(/^text\/plain/);
    expect(await env.text()).toMatch(
      /^export AWS_ACCESS_KEY_ID='ASIA[0-9A-F]+'\nexport AWS_SECRET_ACCESS_KEY='.+'\nexport AWS_SESSION_TOKEN='.+'\nexport AWS_CREDENTIAL_EXPIRATION='.+Z'\n$/,
    );
    const dotenv = await post("/v1/credentials/aws-deploy", "format=dotenv");
    expect(await dotenv.text()).toMatch(/^AWS_ACCESS_KEY_ID=ASIA/);
    const process = await post("/v1/credentials/aws-deploy", "format=credential_process&lifetime=7200");
    expect(process.headers.get("Cache-Control")).toBe("no-store");
    expect(await json(process)).toMatchObject({ Version: 1, AccessKeyId: expect.stringMatching(/^ASIA/) });
    const sent = (await capturedRequests(h.ns)).map((r) => r.body);
    expect(sent.map((b) => b.RoleSessionName)).toEqual(["gitlab-1234", "gitlab-1234", "gitlab-1234"]);
    expect(sent[2]!.DurationSeconds).toBe("7200");
  });

  it("gcp ID token for an audience", async () => {
    const res = await post("/v1/credentials/gcp-deploy", "audience=https://run.example.app");
    expect(await json(res)).toMatchObject({ audience: "https://run.example.app", id_token: expect.any(String) });
  });

  it("azure, vault and oidc", async () => {
    expect(await json(await post("/v1/credentials/azure-deploy", ""))).toMatchObject({
      provider: "azure",
      access_token: expect.any(String),
    });
    expect(await json(await post("/v1/credentials/vault-ci", ""))).toMatchObject({
      client_token: expect.stringMatching(/^hvs\./),
      lease_duration: 900,
    });
    const oidc = await json(await post("/v1/credentials/oidc-any", "lifetime=120"));
    expect(oidc).toMatchObject({ provider: "oidc", audience: "https://rp.example.com", expires_in: 120 });
  });

  it("oidc as env: the issued token in GATEPASS_ISSUED_ID_TOKEN, never over the job's GATEPASS_ID_TOKEN", async () => {
    const res = await post("/v1/credentials/oidc-any", "format=env");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^export GATEPASS_ISSUED_ID_TOKEN='eyJ[\w-]+\.[\w-]+\.[\w-]+'\n$/);
    expect(text).not.toContain("GATEPASS_ID_TOKEN=");
  });

  it("vault: a lease beyond the target's max_lifetime (Vault's 768 h default) is refused, the token never returned", async () => {
    await h.scenario({
      vault: {
        jwtSupportedAlgs: VAULT_ALGS,
        roles: {
          ci: {
            mount: "gatepass",
            boundAudiences: ["vault"],
            boundSubject: "target:vault-ci",
            ttl: 768 * 3600,
            policies: ["deploy"],
          },
        },
      },
    });
    const res = await post("/v1/credentials/vault-ci", "format=env");
    expect(res.status).toBe(502);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({
      code: "upstream_ttl_too_long",
      upstream_error: "ttl_too_long",
      upstream_lease_seconds: 2_764_800,
      max_lifetime_seconds: 3600,
    });
    expect(text).not.toContain("hvs.");
    expect(h.takeLogs()).not.toContain("hvs.");
  });

  it.each([
    [
      "gcp-federated",
      { "gcp-sts": [{ status: 200, body: '{"access_token":"ya29.x","token_type":"Bearer","expires_in":1e300}' }] },
    ],
    [
      "azure-deploy",
      { azure: [{ status: 200, body: '{"token_type":"Bearer","expires_in":"1e300","access_token":"eyJ0.x"}' }] },
    ],
    [
      "vault-ci",
      { vault: [{ status: 200, body: '{"auth":{"client_token":"hvs.x","policies":[],"lease_duration":1e300}}' }] },
    ],
  ])("%s: an absurd upstream expiry is a 502 upstream_unavailable, not a 500 after issuing", async (target, faults) => {
    await h.scenario({ faults });
    for (const format of ["json", "env"]) {
      const res = await post(`/v1/credentials/${target}`, `format=${format}`);
      expect(res.status).toBe(502);
      expect(await json(res)).toMatchObject({ code: "upstream_unavailable", upstream_error: "malformed_response" });
      await h.scenario({ faults });
    }
  });

  it("format=gcloud says what token_file needs: given, and absolute", async () => {
    const missing = await json(await post("/v1/credentials/gcp-deploy", "format=gcloud"));
    expect(missing).toMatchObject({
      code: "request_invalid",
      error_description: expect.stringContaining("format=gcloud needs token_file: the absolute path"),
    });
    const relative = await json(
      await post("/v1/credentials/gcp-deploy", "format=gcloud&token_file=.gatepass/ci-token"),
    );
    expect(relative).toMatchObject({
      code: "request_invalid",
      error_description: expect.stringContaining("token_file must be an absolute path"),
    });
  });

  it("format=gcloud accepts a Windows runner's absolute token_file too", async () => {
    const res = await post(
      "/v1/credentials/gcp-deploy",
      `format=gcloud&token_file=${encodeURIComponent("C:\\GitLab-Runner\\builds\\ci-token")}`,
    );
    expect(res.status).toBe(200);
    expect((await json(res)).credential_source).toEqual({
      file: "C:\\GitLab-Runner\\builds\\ci-token",
      format: { type: "text" },
    });
  });

  it("format=gcloud: an external_account config pointing at gatepass, without any upstream call", async () => {
    const res = await post("/v1/credentials/gcp-deploy", "format=gcloud&token_file=/builds/ci-token");
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(await json(res)).toEqual({
      type: "external_account",
      audience: "gcp-deploy",
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_url: `${ISSUER}/v1/sts/token`,
      credential_source: { file: "/builds/ci-token", format: { type: "text" } },
      universe_domain: "googleapis.com",
    });
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });

  it.each([
    ["a lifetime beyond the target", "/v1/credentials/gcp-deploy", "lifetime=2h", 400, "invalid_scope"],
    [
      "a scope the target does not allow",
      "/v1/credentials/gcp-deploy",
      "scope=https://www.googleapis.com/auth/admin",
      400,
      "invalid_scope",
    ],
    [
      "an ID token audience the target does not list",
      "/v1/credentials/gcp-deploy",
      "audience=https://evil.example.app",
      400,
      "invalid_scope",
    ],
    [
      "an ID token audience differing only in a trailing slash",
      "/v1/credentials/gcp-deploy",
      "audience=https://run.example.app/",
      400,
      "invalid_scope",
    ],
    [
      "an ID token from a target without service account or id_token_audiences",
      "/v1/credentials/gcp-federated",
      "audience=https://run.example.app",
      400,
      "invalid_scope",
    ],
    [
      "credential_process for gcp",
      "/v1/credentials/gcp-deploy",
      "format=credential_process",
      400,
      "format_unsupported",
    ],
    ["gcloud for aws", "/v1/credentials/aws-deploy", "format=gcloud", 400, "format_unsupported"],
    ["an unknown format", "/v1/credentials/aws-deploy", "format=yaml", 400, "format_unsupported"],
    ["an unknown parameter", "/v1/credentials/aws-deploy", "lifetim=900", 400, "request_invalid"],
    ["a repeated parameter", "/v1/credentials/aws-deploy", "lifetime=900&lifetime=901", 400, "request_invalid"],
    ["a malformed lifetime", "/v1/credentials/aws-deploy", "lifetime=-5", 400, "request_invalid"],
    ["token_file without gcloud", "/v1/credentials/aws-deploy", "token_file=x", 400, "request_invalid"],
    ["an empty scope list", "/v1/credentials/gcp-deploy", "scope=,", 400, "request_invalid"],
    [
      "an audience with a control character",
      "/v1/credentials/gcp-deploy",
      "audience=https://run.example.app%0A",
      400,
      "request_invalid",
    ],
    [
      "gcloud with a lifetime",
      "/v1/credentials/gcp-deploy",
      "format=gcloud&lifetime=900&token_file=/builds/t",
      400,
      "request_invalid",
    ],
    [
      "gcloud without token_file (no default could be absolute)",
      "/v1/credentials/gcp-deploy",
      "format=gcloud",
      400,
      "request_invalid",
    ],
    [
      "a relative token_file (Google's tools would resolve it elsewhere)",
      "/v1/credentials/gcp-deploy",
      "format=gcloud&token_file=.gatepass/ci-token",
      400,
      "request_invalid",
    ],
    ["an unknown target", "/v1/credentials/nope", "", 404, "target_unknown"],
  ])("refuses %s before any upstream call", async (_name, path, body, status, code) => {
    const res = await post(path, body);
    expect(res.status).toBe(status);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect((await json(res)).code).toBe(code);
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });

  it("refuses a target name that no target can have before looking for a token, without echoing it", async () => {
    const res = await post("/v1/credentials/%3Cx%3E", "", FORM);
    expect(res.status).toBe(404);
    const text = await res.text();
    expect(JSON.parse(text).code).toBe("target_unknown");
    expect(text).not.toContain("<x>");
    // Upper case and over 63 characters are names no target can have either (policy/schema-patterns.ts).
    for (const name of ["Gcp-Deploy", "a".repeat(64)]) {
      const refused = await post(`/v1/credentials/${name}`, "", FORM);
      expect([refused.status, (await json(refused)).code]).toEqual([404, "target_unknown"]);
    }
  });

  it("refuses a job the policy does not allow (policy_denied)", async () => {
    const other = await h.ciToken({ project_path: "platform/infra-evil" });
    const res = await post("/v1/credentials/gcp-deploy", "", bearer(other, FORM));
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe("policy_denied");
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });

  it("refuses a request without a token (token_missing) or with a forged one (token_unverified)", async () => {
    const missing = await post("/v1/credentials/gcp-deploy", "", FORM);
    expect(missing.status).toBe(401);
    expect((await json(missing)).code).toBe("token_missing");
    const forged = `${token.split(".").slice(0, 2).join(".")}.${"A".repeat(342)}`;
    const res = await post("/v1/credentials/gcp-deploy", "", bearer(forged, FORM));
    expect(res.status).toBe(401);
    expect((await json(res)).code).toBe("token_unverified");
  });

  it("refuses an oversized body", async () => {
    const res = await post("/v1/credentials/gcp-deploy", `scope=${"a".repeat(40_000)}`);
    expect(res.status).toBe(413);
    expect((await json(res)).code).toBe("request_too_large");
  });

  it("refuses a body that is not UTF-8 (request_invalid), never decoding it loosely", async () => {
    const res = await h.request("/v1/credentials/gcp-deploy", {
      method: "POST",
      headers: bearer(token, FORM),
      body: new Uint8Array([0x73, 0x63, 0x6f, 0x70, 0x65, 0x3d, 0xff]),
    });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({
      code: "request_invalid",
      error_description: "The body could not be read as UTF-8 text.",
    });
  });

  it("refuses a body in another media type (request_invalid)", async () => {
    const res = await post(
      "/v1/credentials/gcp-deploy",
      "lifetime=600",
      bearer(token, { "Content-Type": "text/plain" }),
    );
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({
      code: "request_invalid",
      error_description: "Send parameters as application/x-www-form-urlencoded or application/json.",
    });
  });

  it.each([
    ["does not parse", '{"lifetime":', "The JSON body does not parse."],
    ["is null", "null", "The JSON body must be an object."],
    ["is a list", '["lifetime"]', "The JSON body must be an object."],
    ["is a string", '"lifetime=600"', "The JSON body must be an object."],
    [
      "has a nested value",
      '{"lifetime":{"seconds":600}}',
      "The JSON body must be one object whose values are strings or numbers; nothing nested.",
    ],
  ])("refuses a JSON body that %s (request_invalid)", async (_name, body, description) => {
    const res = await post("/v1/credentials/gcp-deploy", body, bearer(token, { "Content-Type": "application/json" }));
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ code: "request_invalid", error_description: description });
  });

  it("maps an upstream refusal to upstream_denied with the cloud's code and no raw body", async () => {
    await h.scenario({ gcp: { provider: "projects/1/locations/global/workloadIdentityPools/x/providers/y" } });
    const res = await post("/v1/credentials/gcp-deploy", "");
    expect(res.status).toBe(403);
    const body = await json(res);
    expect(body).toMatchObject({ code: "upstream_denied", upstream_error: "invalid_target", upstream_status: 400 });
    expect(JSON.stringify(body)).not.toContain("The target service indicated");
    const logs = h.takeLogs();
    expect(logs).toContain("The target service indicated");
    // The refused request carried the minted token: the log keeps the answer, never the request.
    const minted = (await capturedRequests(h.ns))[0]!.body.subject_token as string;
    expect(minted).toMatch(/^eyJ/);
    for (const secret of [token, minted]) expect(logs).not.toContain(secret);
  });

  it("maps an upstream that keeps failing to upstream_unavailable after retries", async () => {
    await h.scenario({
      faults: { azure: [1, 2, 3].map(() => ({ status: 503, body: '{"error":"temporarily_unavailable"}' })) },
    });
    const res = await post("/v1/credentials/azure-deploy", "");
    expect(res.status).toBe(502);
    expect(await json(res)).toMatchObject({ code: "upstream_unavailable", upstream_error: "temporarily_unavailable" });
    expect(await capturedRequests(h.ns)).toHaveLength(3);
  });

  it("bounds a hanging upstream with upstream_timeout", { timeout: 15_000 }, async () => {
    await h.scenario({ faults: { vault: [{ delayMs: 7_000 }] } });
    const res = await post("/v1/credentials/vault-ci", "");
    expect(res.status).toBe(504);
    expect((await json(res)).code).toBe("upstream_timeout");
  });

  it("never logs the CI token, the minted token or the credential", async () => {
    const res = await post("/v1/credentials/aws-deploy", "");
    const body = await json(res);
    const minted = (await capturedRequests(h.ns))[0]!.body.WebIdentityToken as string;
    const logs = h.takeLogs();
    expect(logs).toContain("credential_issued");
    for (const secret of [token, minted, body.secret_access_key, body.session_token])
      expect(logs).not.toContain(String(secret));
  });
});

describe("POST /v1/token (RFC 8693)", () => {
  const grant =
    "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token_type=urn:ietf:params:oauth:token-type:jwt";

  it("exchanges for a gcp access token", async () => {
    const res = await post("/v1/token", `${grant}&subject_token=${token}&audience=gcp-deploy`, FORM);
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(await json(res)).toMatchObject({
      issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
      token_type: "Bearer",
      expires_in: expect.any(Number),
    });
  });

  it("answers whole seconds when the CI token's exp is fractional (expires_in and the minted exp)", async () => {
    const fractional = await h.ciToken({}, { ttl: 100.5 });
    const res = await post("/v1/token", `${grant}&subject_token=${fractional}&resource=oidc-any`, FORM);
    const body = await json(res);
    expect(Number.isInteger(body.expires_in)).toBe(true);
    const minted = JSON.parse(Buffer.from(String(body.access_token).split(".")[1]!, "base64url").toString()) as {
      iat: number;
      nbf: number;
      exp: number;
    };
    expect([minted.iat, minted.nbf, minted.exp].every(Number.isInteger)).toBe(true);
    expect(minted.exp - minted.iat).toBe(body.expires_in);
  });

  it("exchanges for gatepass's own JWT (oidc target, via resource)", async () => {
    const res = await post("/v1/token", `${grant}&subject_token=${token}&resource=oidc-any`, FORM);
    expect(await json(res)).toMatchObject({
      issued_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_type: "N_A",
    });
  });

  it.each([
    [
      "a wrong grant type",
      `grant_type=client_credentials&subject_token=T&audience=gcp-deploy`,
      "unsupported_grant_type",
      "grant_type_unsupported",
    ],
    ["a missing subject token", `${grant}&audience=gcp-deploy`, "invalid_request", "request_invalid"],
    [
      "a missing subject token type",
      "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=T&audience=gcp-deploy",
      "invalid_request",
      "request_invalid",
    ],
    ["no target", `${grant}&subject_token=T`, "invalid_request", "request_invalid"],
    [
      "an invalid subject token",
      `${grant}&subject_token=not.a.jwt&audience=gcp-deploy`,
      "invalid_request",
      "token_malformed",
    ],
    ["an unknown target", `${grant}&subject_token=T&audience=nope`, "invalid_target", "target_unknown"],
    ["an aws target", `${grant}&subject_token=T&audience=aws-deploy`, "invalid_request", "format_unsupported"],
    [
      "a token type the target does not issue",
      `${grant}&subject_token=T&audience=gcp-deploy&requested_token_type=urn:ietf:params:oauth:token-type:jwt`,
      "invalid_request",
      "request_invalid",
    ],
    [
      "a scope beyond the target",
      `${grant}&subject_token=T&audience=gcp-deploy&scope=https://www.googleapis.com/auth/admin`,
      "invalid_scope",
      "invalid_scope",
    ],
  ])("answers %s with HTTP 400 and an RFC 6749 error", async (_name, body, error, code) => {
    const res = await post("/v1/token", body.replace("subject_token=T", `subject_token=${token}`), FORM);
    expect(res.status).toBe(400);
    expect(res.headers.get("WWW-Authenticate")).toBeNull();
    expect(await json(res)).toMatchObject({ error, code, error_description: expect.any(String) });
  });

  // Proxies and load balancers log URLs: a token there is refused before it is even looked at.
  it.each(["/v1/token", "/v1/sts/token"])(
    "%s refuses subject_token in the query string, whatever the body says",
    async (path) => {
      const rest =
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token_type=urn:ietf:params:oauth:token-type:jwt&audience=gcp-deploy";
      for (const [url, body] of [
        [`${path}?subject_token=${token}`, rest],
        [`${path}?subject_token=${token}&${rest}`, ""],
        [`${path}?subject_token=`, `${rest}&subject_token=${token}`],
      ]) {
        const res = await post(url!, body, FORM);
        expect(res.status).toBe(400);
        const text = await res.text();
        expect(JSON.parse(text)).toMatchObject({
          error: "invalid_request",
          code: "request_invalid",
          error_description: expect.stringMatching(/subject_token .*request body/),
        });
        expect(text).not.toContain(token);
      }
      expect(await capturedRequests(h.ns)).toHaveLength(0);
      // The same request with the token in the body is served.
      expect((await post(path, `${rest}&subject_token=${token}`, FORM)).status).toBe(200);
    },
  );

  it("refuses audience and resource naming different targets before anything is sent upstream", async () => {
    const res = await post("/v1/token", `${grant}&subject_token=${token}&audience=gcp-deploy&resource=oidc-any`, FORM);
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: "invalid_request", code: "request_invalid" });
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });

  it("refuses an aws target before anything is sent upstream", async () => {
    const res = await post("/v1/token", `${grant}&subject_token=${token}&audience=aws-deploy`, FORM);
    expect(await json(res)).toMatchObject({ code: "format_unsupported" });
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });

  it("answers a policy denial with invalid_target", async () => {
    const other = await h.ciToken({ ref: "feature" });
    const res = await post("/v1/token", `${grant}&subject_token=${other}&audience=gcp-deploy`, FORM);
    expect(await json(res)).toMatchObject({ error: "invalid_target", code: "policy_denied" });
  });
});

describe("POST /v1/sts/token (Google STS-compatible)", () => {
  const form = (subject: string, audience = "gcp-deploy") =>
    new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      audience,
      scope: "https://www.googleapis.com/auth/cloud-platform",
      requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
      subject_token: subject,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    }).toString();

  it("answers like Google STS: snake_case, integer expires_in", async () => {
    const res = await post("/v1/sts/token", form(token), FORM);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toEqual({
      access_token: expect.stringMatching(/^ya29\.sa-/),
      issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
      token_type: "Bearer",
      expires_in: expect.any(Number),
    });
    expect(Number.isInteger(body.expires_in)).toBe(true);
    expect(body.expires_in).toBeGreaterThan(0);
  });

  it.each([
    [
      "Terraform's",
      ["https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/userinfo.email"],
    ],
    [
      "gcloud's",
      [
        "openid",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/cloud-platform",
        "https://www.googleapis.com/auth/appengine.admin",
        "https://www.googleapis.com/auth/sqlservice.login",
        "https://www.googleapis.com/auth/compute",
      ],
    ],
  ])("grants from %s fixed scope set only the scopes the target allows", async (_client, scopes) => {
    const body = new URLSearchParams(form(token));
    body.set("scope", scopes.join(" "));
    // gcloud also authenticates as its own OAuth client; that says nothing about the job, and is ignored.
    const res = await post("/v1/sts/token", body.toString(), {
      ...FORM,
      Authorization: `Basic ${btoa("32555940559.apps.googleusercontent.com:secret")}`,
    });
    expect(res.status).toBe(200);
    const iam = (await capturedRequests(h.ns)).find((r) => r.service === "gcp-iam")!;
    expect(iam.body.scope).toEqual(["https://www.googleapis.com/auth/cloud-platform"]);
  });

  it("still refuses a request none of whose scopes the target allows, naming them", async () => {
    const body = new URLSearchParams(form(token));
    body.set("scope", "openid https://www.googleapis.com/auth/userinfo.email");
    const res = await post("/v1/sts/token", body.toString(), FORM);
    expect(await json(res)).toMatchObject({
      error: "invalid_scope",
      code: "invalid_scope",
      error_description:
        "target gcp-deploy does not allow the scope(s) openid https://www.googleapis.com/auth/userinfo.email.",
    });
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });

  it("refuses a requested_token_type other than access_token before anything is sent upstream", async () => {
    const body = new URLSearchParams(form(token));
    body.set("requested_token_type", "urn:ietf:params:oauth:token-type:jwt");
    const res = await post("/v1/sts/token", body.toString(), FORM);
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: "invalid_request", code: "request_invalid" });
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });

  it("answers errors like Google STS", async () => {
    const bad = await json(await post("/v1/sts/token", form("x.y.z"), FORM));
    expect(bad).toMatchObject({ error: "invalid_grant", code: "token_malformed" });
    const denied = await json(await post("/v1/sts/token", form(await h.ciToken({ ref_protected: "false" })), FORM));
    expect(denied).toMatchObject({ error: "unauthorized_client", code: "policy_denied" });
    const notGcp = await json(await post("/v1/sts/token", form(token, "azure-deploy"), FORM));
    expect(notGcp).toMatchObject({ error: "invalid_request", code: "format_unsupported" });
  });

  it("refuses a request without audience, which names the target", async () => {
    const body = new URLSearchParams(form(token));
    body.delete("audience");
    const res = await post("/v1/sts/token", body.toString(), FORM);
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({
      error: "invalid_request",
      code: "request_invalid",
      error_description: expect.stringMatching(/^audience must name the gatepass target/),
    });
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });
});

describe("GET /access (Sapro compatibility)", () => {
  it("returns the access token as text/plain for the target holding the service account", async () => {
    const res = await h.request(`/access?sa=${SA}&scopes=cloud-platform&lifetime=10`, {
      headers: { "Gitlab-Token": token },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/plain/);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(await res.text()).toMatch(/^ya29\.sa-/);
    const iam = (await capturedRequests(h.ns)).find((r) => r.service === "gcp-iam")!;
    expect(iam.body).toEqual({ scope: ["https://www.googleapis.com/auth/cloud-platform"], lifetime: "600s" });
  });

  it("refuses a service account no allowed target holds, and a lifetime beyond the target", async () => {
    const unknown = await h.request(`/access?sa=other@p.iam.gserviceaccount.com`, {
      headers: { "Gitlab-Token": token },
    });
    expect(unknown.status).toBe(403);
    expect((await json(unknown)).code).toBe("policy_denied");
    const long = await h.request(`/access?sa=${SA}&lifetime=120`, { headers: { "Gitlab-Token": token } });
    expect((await json(long)).code).toBe("invalid_scope");
    const missing = await h.request(`/access?sa=${SA}`);
    expect((await json(missing)).code).toBe("token_missing");
  });

  it.each([
    [
      "scopes with a control character",
      `scopes=${encodeURIComponent("cloud-platform\u0001")}`,
      "scopes must be a comma-separated list of scopes.",
    ],
    ["an empty scope", "scopes=cloud-platform,", "scopes must be a comma-separated list of scopes."],
    ["a lifetime in hours", "lifetime=1h", "lifetime is a number of minutes."],
    ["a lifetime of zero", "lifetime=0", "lifetime is a number of minutes."],
  ])("refuses %s (request_invalid) before anything is sent upstream", async (_name, query, description) => {
    const res = await h.request(`/access?sa=${SA}&${query}`, { headers: { "Gitlab-Token": token } });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ code: "request_invalid", error_description: description });
    expect(await capturedRequests(h.ns)).toHaveLength(0);
  });

  it("refuses an sa that is not a service account email, before echoing it", async () => {
    const res = await h.request(`/access?sa=${encodeURIComponent("<b>x</b>")}`, { headers: { "Gitlab-Token": token } });
    expect(res.status).toBe(400);
    const body = await json(res);
    expect(body.code).toBe("request_invalid");
    expect(JSON.stringify(body)).not.toContain("<b>");
  });
});

describe("refusals before the signature verifies", () => {
  /** Tokens refused before their signature verified, each for another reason; `recorded` is that reason. */
  async function forgeries(): Promise<{ label: string; token: string; recorded: string }[]> {
    const rsa = await generateKeyPair("RS256");
    const ec = await generateKeyPair("ES256");
    const now = Math.floor(Date.now() / 1000);
    const forge = (
      key: CryptoKey,
      claims: Record<string, unknown>,
      header: { alg: string; kid: string },
      iss: string | null = h.ciIssuerUrl,
    ) => {
      const jwt = new SignJWT({ ...CI_CLAIMS, ...claims })
        .setProtectedHeader({ ...header, typ: "JWT" })
        .setAudience(CI_AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(now + 600);
      return (iss === null ? jwt : jwt.setIssuer(iss)).sign(key);
    };
    return [
      {
        label: "an unknown issuer",
        token: await forge(rsa.privateKey, {}, { alg: "RS256", kid: "ci-key-1" }, "https://gitlab.private.example"),
        recorded: "issuer_unknown",
      },
      {
        label: "no iss",
        token: await forge(rsa.privateKey, {}, { alg: "RS256", kid: "ci-key-1" }, null),
        recorded: "issuer_unknown",
      },
      {
        label: "a configured issuer, another key's signature",
        token: await forge(rsa.privateKey, {}, { alg: "RS256", kid: "ci-key-1" }),
        recorded: "signature_invalid",
      },
      {
        label: "a configured issuer, an algorithm it does not allow",
        token: await forge(ec.privateKey, {}, { alg: "ES256", kid: "ci-key-1" }),
        recorded: "algorithm_not_allowed",
      },
      {
        label: "a configured issuer, a kid it does not publish",
        token: await forge(rsa.privateKey, {}, { alg: "RS256", kid: "ci-key-9" }),
        recorded: "key_unknown",
      },
    ];
  }

  it("answers one code, sentence, status and headers whether or not the issuer is configured; logs and audits the reason", async () => {
    const answers = new Set<string>();
    for (const { label, token: forged, recorded } of await forgeries()) {
      const res = await post("/v1/credentials/aws-deploy", "", bearer(forged, FORM));
      const requestId = res.headers.get("X-Request-Id")!;
      const body = await json(res);
      expect({ label, status: res.status, code: body.code }).toEqual({ label, status: 401, code: "token_unverified" });
      const headers = [...res.headers].filter(([name]) => name !== "x-request-id");
      answers.add(JSON.stringify({ status: res.status, headers, body: { ...body, request_id: undefined } }));
      // Nothing in the answer names the issuer, its URL or its algorithms.
      expect(JSON.stringify(body)).not.toMatch(/ci-key|RS256|gitlab\.private|"ci"|\/ci\b/);
      // The operator sees the reason: the audit row's error_code and the request's log line.
      expect(await auditEventsFor(requestId)).toMatchObject([
        { error_code: recorded, status: 401, decision: "deny", token_sha256: await tokenDigest(forged) },
      ]);
      const line = h
        .takeLogs()
        .split("\n")
        .find((l) => l.includes(requestId));
      expect(line, label).toContain(`"code":"${recorded}"`);
      expect(line, label).toContain('"reason":');
    }
    expect(answers.size).toBe(1);
  });

  it("answers the token endpoints alike: one body for every refusal before the signature verifies", async () => {
    const answers = new Set<string>();
    for (const { token: forged } of await forgeries()) {
      const body = new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: forged,
        subject_token_type: TOKEN_TYPE.jwt,
        audience: "oidc-any",
      }).toString();
      const res = await h.request("/v1/token", { method: "POST", headers: FORM, body });
      const answer = await json(res);
      expect(answer).toMatchObject({ code: "token_unverified", error: "invalid_request" });
      answers.add(JSON.stringify({ status: res.status, body: { ...answer, request_id: undefined } }));
    }
    expect(answers.size).toBe(1);
  });

  it("keeps its own code once the signature verified (here: an expired token)", async () => {
    const res = await post("/v1/credentials/aws-deploy", "", bearer(await h.ciToken({}, { ttl: -120 })));
    expect(await json(res)).toMatchObject({ code: "token_expired" });
  });
});

describe("HEAD on routes that mint or exchange", () => {
  it.each([
    ["GET /access", `/access?sa=${SA}`, { "Gitlab-Token": "TOKEN" }, "GET"],
    ["POST /v1/credentials/:target", "/v1/credentials/gcp-deploy", { Authorization: "Bearer TOKEN" }, "POST"],
    ["POST /v1/token", "/v1/token", {}, "POST"],
    ["POST /v1/sts/token", "/v1/sts/token", {}, "POST"],
  ])(
    "%s: HEAD is refused (405 method_not_allowed, Allow) before any exchange",
    async (_route, path, headers, allow) => {
      const withToken = Object.fromEntries(
        Object.entries(headers).map(([name, value]) => [name, value.replace("TOKEN", token)]),
      );
      const res = await h.request(path, { method: "HEAD", headers: withToken });
      expect(res.status).toBe(405);
      expect(res.headers.get("Allow")).toBe(allow);
      expect(await capturedRequests(h.ns)).toHaveLength(0);
      expect(await auditEventsFor(res.headers.get("X-Request-Id")!)).toMatchObject([
        { error_code: "method_not_allowed", status: 405, target: null },
      ]);
    },
  );

  it("every GET route either only reads, or refuses HEAD", async () => {
    const readOnly = [
      "/healthz",
      "/templates/gitlab-ci.yml",
      "/v1/whoami",
      "/v1/admin/status",
      "/v1/admin/audit",
      "/.well-known/openid-configuration",
      "/.well-known/jwks.json",
      "/v1/admin/policies/active",
      "/v1/admin/policies/versions/:version",
      "/v1/admin/policies/history",
      "/v1/admin/seen-identities",
    ];
    const getPaths = createApp()
      .routes.filter((r) => r.method === "GET")
      .map((r) => r.path);
    expect(getPaths.filter((path) => !readOnly.includes(path)).sort()).toEqual([...CREDENTIAL_GET_PATHS].sort());
    expect((await h.request("/healthz", { method: "HEAD" })).status).toBe(200);
  });
});

describe("over-long headers (up to the 128 KiB Cloudflare lets through to the Worker)", () => {
  const huge = "a".repeat(100 * 1024);

  it.each([
    [
      "POST /v1/credentials/:target",
      "/v1/credentials/gcp-deploy",
      "POST",
      { Authorization: `Bearer ${huge}` },
      401,
      "token_too_large",
    ],
    ["GET /v1/whoami", "/v1/whoami", "GET", { Authorization: `Bearer ${huge}` }, 401, "token_too_large"],
    ["GET /access (Gitlab-Token)", `/access?sa=${SA}`, "GET", { "Gitlab-Token": huge }, 401, "token_too_large"],
    ["an admin route", "/v1/admin/status", "GET", { Authorization: `Bearer ${huge}` }, 401, "admin_unauthorized"],
  ])(
    "%s answers gatepass's JSON refusal for a 100 KiB credential header",
    async (_route, path, method, headers, status, code) => {
      const res = await h.request(path, { method, headers }, { GATEPASS_ADMIN_TOKEN: "test-admin-token" });
      expect(res.status).toBe(status);
      expect(res.headers.get("Content-Type")).toBe("application/json");
      expect(await json(res)).toMatchObject({ code, request_id: res.headers.get("X-Request-Id") });
      expect(await capturedRequests(h.ns)).toHaveLength(0);
    },
  );

  it("ignores a 100 KiB header it does not read", async () => {
    const res = await post(
      "/v1/credentials/oidc-any",
      "",
      bearer(token, { ...FORM, Cookie: `c=${huge}`, "X-Padding": huge }),
    );
    expect(res.status).toBe(200);
  });
});

describe("audit of credential requests", () => {
  it("records the token's hash, the target, the rule and the upstream time of an exchange", async () => {
    const res = await post("/v1/credentials/aws-deploy", "");
    expect(res.status).toBe(200);
    const event = (await auditEventsFor(res.headers.get("X-Request-Id")!))[0];
    expect(event).toMatchObject({
      route: "POST /v1/credentials/:target",
      token_sha256: await tokenDigest(token),
      project_path: "platform/infra",
      target: "aws-deploy",
      rule: "infra-main",
      decision: "allow",
      status: 200,
      policy_version: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(event!.upstream_ms).toEqual(expect.any(Number));
  });

  it("records Sapro-compatible GET /access requests too", async () => {
    const res = await h.request(`/access?sa=${SA}`, { headers: { "Gitlab-Token": token } });
    expect(res.status).toBe(200);
    expect((await auditEventsFor(res.headers.get("X-Request-Id")!))[0]).toMatchObject({
      route: "GET /access",
      token_sha256: await tokenDigest(token),
      target: "gcp-deploy",
      decision: "allow",
    });
  });
});

// The HTTP surface of verification through the real Worker (SELF: real KV, real loopback issuer):
// GET /v1/whoami, the admin JWKS push, and the cron refresh.
import { createExecutionContext, createScheduledController, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../../src/app";
import type { Env } from "../../../src/config";
import { MAX_JWKS_BYTES, MAX_TOKEN_BYTES } from "../../../src/limits";
import { bearerToken } from "../../../src/http/bearer-token";
import { ACTIVE_SNAPSHOT_KEY } from "../../../src/policy/active-policy";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import { normalizePolicy } from "../../../src/policy/policy-schema";
import worker from "../../../src/index";
import { jwksStorageKey, type StoredKeySet } from "../../../src/issuer-keys/stored-key-set";
import { issuerStats, setIssuerScenario, standinIssuerUrl } from "../../support/standins/issuer";
import { createTestKey, gitlabClaims, jwksOf, signToken, splitToken, type TestKey } from "../../support/tokens";
import { AUDIENCE, uniqueName } from "./harness";

const BASE = "https://gatepass.test";
const ADMIN = { Authorization: "Bearer test-admin-token" };

const discoveryName = uniqueName("disc");
const pushedName = uniqueName("priv");
const cronName = uniqueName("cron");
let discoveryKey: TestKey;
let pushedKey: TestKey;

beforeAll(async () => {
  discoveryKey = await createTestKey();
  pushedKey = await createTestKey();
  await setIssuerScenario(env.STANDIN_URL, discoveryName, { jwks: jwksOf(discoveryKey) });
  await setIssuerScenario(env.STANDIN_URL, cronName, { jwks: jwksOf(discoveryKey) });
  const issuer = (name: string, keys: Record<string, string>) => ({
    name,
    url: standinIssuerUrl(env.STANDIN_URL, name),
    audiences: [AUDIENCE],
    keys,
  });
  const { policy, problems } = normalizePolicy(
    [
      {
        name: "issuers.yaml",
        value: {
          issuers: [
            issuer(discoveryName, { source: "discovery" }),
            issuer(pushedName, { source: "pushed" }),
            issuer(cronName, { source: "discovery" }),
          ],
        },
      },
    ],
    "source",
  );
  expect(problems).toEqual([]);
  const { text } = await buildSnapshot(policy, { sourceDigest: "0".repeat(64), createdAt: new Date().toISOString() });
  await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, text);
});

const tokenFor = (name: string, key: TestKey, overrides: Record<string, unknown> = {}) =>
  signToken(key, {
    ...gitlabClaims({ issuer: standinIssuerUrl(env.STANDIN_URL, name), audience: AUDIENCE }),
    ...overrides,
  });
const whoami = (token?: string) =>
  SELF.fetch(`${BASE}/v1/whoami`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
const pushJwks = (name: string, body: unknown, headers: Record<string, string> = ADMIN) =>
  SELF.fetch(`${BASE}/v1/admin/issuers/${name}/jwks`, {
    method: "PUT",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
const json = async (res: Response) => (await res.json()) as Record<string, unknown>;

describe("GET /v1/whoami", () => {
  it("returns the verified, normalised identity and never the token", async () => {
    const token = await tokenFor(discoveryName, discoveryKey);
    const res = await whoami(token);
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const text = await res.text();
    expect(text).not.toContain(splitToken(token)[2]);
    const body = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual([
      "claims",
      "expires_at",
      "grants",
      "issued_at",
      "issuer",
      "issuer_url",
      "policy_version",
      "token_sha256",
    ]);
    expect(body).toMatchObject({ issuer: discoveryName, issuer_url: standinIssuerUrl(env.STANDIN_URL, discoveryName) });
    expect(body.claims).toMatchObject({ project_path: "platform/infra", ref_protected: "true", runner_id: "17" });
    expect(body.token_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("answers a refusal with its stable code and an RFC 6749-style body", async () => {
    const res = await whoami(await tokenFor(discoveryName, discoveryKey, { aud: "https://other.example" }));
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toBe('Bearer error="invalid_token"');
    expect(await json(res)).toMatchObject({
      error: "invalid_token",
      code: "audience_mismatch",
      request_id: res.headers.get("X-Request-Id"),
    });
  });

  it("refuses a missing token, and an unknown issuer as any token whose signature does not verify", async () => {
    expect(await json(await whoami())).toMatchObject({ code: "token_missing" });
    const basic = await SELF.fetch(`${BASE}/v1/whoami`, { headers: { Authorization: "Basic dXNlcjpwYXNz" } });
    expect({ status: basic.status, body: await json(basic) }).toMatchObject({
      status: 401,
      body: { code: "token_missing" },
    });
    const stranger = await createTestKey();
    expect(
      await json(
        await whoami(
          await signToken(stranger, gitlabClaims({ issuer: "https://gitlab.evil.example", audience: AUDIENCE })),
        ),
      ),
    ).toMatchObject({ code: "token_unverified" });
  });
});

describe("bearerToken", () => {
  it("takes the token from the Bearer scheme, any case, surrounded by blanks", () => {
    expect(bearerToken("bearer \tabc.def.ghi ")).toBe("abc.def.ghi");
  });

  it.each([
    ["a header too long to hold a token", `Bearer ${"a".repeat(MAX_TOKEN_BYTES + 64)}`, "token_too_large"],
    ["a token over the cap in a header under it", `Bearer ${"a".repeat(MAX_TOKEN_BYTES + 1)}`, "token_too_large"],
    ["another scheme", "Basic dXNlcjpwYXNz", "token_missing"],
    ["two tokens", "Bearer a b", "token_missing"],
    ["an empty header", "", "token_missing"],
  ])("refuses %s", (_name, header, code) => {
    expect(() => bearerToken(header)).toThrow(expect.objectContaining({ code }));
  });
});

describe("PUT /v1/admin/issuers/:name/jwks", () => {
  it("is disabled without GATEPASS_ADMIN_TOKEN", async () => {
    const app = createApp();
    const noAdmin = { ...(env as unknown as Env), GATEPASS_ADMIN_TOKEN: undefined };
    const res = await app.request(
      `/v1/admin/issuers/${pushedName}/jwks`,
      { method: "PUT", headers: ADMIN, body: "{}" },
      noAdmin,
      createExecutionContext(),
    );
    expect(res.status).toBe(403);
    expect(await json(res)).toMatchObject({ code: "admin_disabled" });
  });

  it.each([
    ["no Authorization", {}],
    ["a wrong token", { Authorization: "Bearer test-admin-tokeX" }],
    ["a prefix of the token", { Authorization: "Bearer test-admin" }],
    ["the token with a suffix", { Authorization: "Bearer test-admin-token2" }],
    ["another scheme", { Authorization: "Basic dGVzdC1hZG1pbi10b2tlbg==" }],
  ])("refuses %s", async (_label, headers) => {
    const res = await pushJwks(pushedName, jwksOf(pushedKey), headers);
    expect(res.status).toBe(401);
    expect(await json(res)).toMatchObject({ code: "admin_unauthorized" });
  });

  it("stores a valid key set; tokens signed with it then verify", async () => {
    await expect(json(await whoami(await tokenFor(pushedName, pushedKey)))).resolves.toMatchObject({
      code: "jwks_unavailable",
    });
    const res = await pushJwks(pushedName, jwksOf(pushedKey));
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ issuer: pushedName, kids: [pushedKey.kid] });
    const stored = JSON.parse((await env.JWKS.get(jwksStorageKey(pushedName)))!) as StoredKeySet;
    expect(stored).toMatchObject({
      source: "pushed",
      issuer_url: standinIssuerUrl(env.STANDIN_URL, pushedName),
      keys: [{ kid: pushedKey.kid }],
    });
    expect((await whoami(await tokenFor(pushedName, pushedKey))).status).toBe(200);
  });

  it("refuses an invalid key set and keeps the old one", async () => {
    await pushJwks(pushedName, jwksOf(pushedKey));
    const before = await env.JWKS.get(jwksStorageKey(pushedName));
    const privateJwk = await crypto.subtle.exportKey("jwk", pushedKey.privateKey);
    const other = await createTestKey();
    const { kid: _kid, ...noKid } = other.publicJwk;
    const notUtf8 = new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]);
    for (const [body, problem] of [
      [{ keys: [{ ...privateJwk, kid: "leaked" }] }, /private/],
      [{ keys: [noKid] }, /kid/],
      [{ keys: [] }, /the key set has no keys/],
      ["not json", /^The request body is not JSON\.$/],
      [notUtf8, /^The request body is not UTF-8 text\.$/],
    ] as const) {
      const res = await pushJwks(pushedName, body);
      expect(res.status).toBe(400);
      const answer = await json(res);
      expect(answer).toMatchObject({ code: "jwks_invalid" });
      expect(answer.error_description).toMatch(problem);
    }
    expect(await env.JWKS.get(jwksStorageKey(pushedName))).toBe(before);
    expect((await whoami(await tokenFor(pushedName, pushedKey))).status).toBe(200);
  });

  it("refuses a body over the size cap", async () => {
    const res = await pushJwks(pushedName, { keys: [], pad: "x".repeat(MAX_JWKS_BYTES) });
    expect(res.status).toBe(413);
    expect(await json(res)).toMatchObject({ code: "request_too_large" });
  });

  it("refuses a streamed body over the size cap (no Content-Length to check)", async () => {
    const chunk = new TextEncoder().encode("x".repeat(16 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > MAX_JWKS_BYTES) return controller.close();
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    const res = await SELF.fetch(`${BASE}/v1/admin/issuers/${pushedName}/jwks`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", ...ADMIN },
      body,
    });
    expect(res.status).toBe(413);
    expect(await json(res)).toMatchObject({ code: "request_too_large" });
  });

  it("refuses issuers whose keys are not pushed, and unknown issuers", async () => {
    for (const name of [discoveryName, "nobody"]) {
      const res = await pushJwks(name, jwksOf(pushedKey));
      expect(res.status).toBe(409);
      expect(await json(res)).toMatchObject({ code: "issuer_not_pushable" });
    }
  });
});

describe("scheduled", () => {
  it("refreshes the keys of the policy's fetched issuers into KV", async () => {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *" }), env as unknown as Env, ctx);
    await waitOnExecutionContext(ctx);
    const stored = JSON.parse((await env.JWKS.get(jwksStorageKey(cronName)))!) as StoredKeySet;
    expect(stored).toMatchObject({ source: "discovery", keys: [{ kid: discoveryKey.kid }] });
    expect(await issuerStats(env.STANDIN_URL, cronName)).toEqual({ discovery: 1, jwks: 1 });
    // Fresh keys are left alone by the next run.
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *" }), env as unknown as Env, ctx);
    expect(await issuerStats(env.STANDIN_URL, cronName)).toEqual({ discovery: 1, jwks: 1 });
  });
});

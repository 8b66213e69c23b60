// Issuer-scoped push credentials through the real app (real D1 and KV): a credential pushes keys for
// its issuer and does nothing else; every refusal has its code; every attempt is audited under the
// credential's id, never the credential.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { newPushCredential } from "../../../src/admin/push-credentials";
import { createApp } from "../../../src/app";
import type { Env } from "../../../src/config";
import { defaultDeps } from "../../../src/deps";
import { normalizePolicy } from "../../../src/policy/policy-schema";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import { ACTIVE_SNAPSHOT_KEY } from "../../../src/policy/active-policy";
import { jwksStorageKey, type StoredKeySet } from "../../../src/issuer-keys/stored-key-set";
import { createTestKey, jwksOf, type TestKey } from "../../support/tokens";

const ADMIN = { Authorization: "Bearer test-admin-token" };
const app = createApp(defaultDeps);
const now = () => Math.floor(Date.now() / 1000);
let key: TestKey;

beforeAll(async () => {
  const pushed = (name: string) => ({
    name,
    url: `https://${name}.corp.example`,
    audiences: ["https://gatepass.test"],
    keys: { source: "pushed" },
  });
  const { policy, problems } = normalizePolicy(
    [
      {
        name: "issuers.yaml",
        value: {
          issuers: [
            pushed("alpha"),
            pushed("beta"),
            { name: "public", url: "https://gitlab.example.com", audiences: ["https://gatepass.test"] },
          ],
        },
      },
    ],
    "source",
  );
  expect(problems).toEqual([]);
  await env.POLICIES.put(
    ACTIVE_SNAPSHOT_KEY,
    (await buildSnapshot(policy, { sourceDigest: "0".repeat(64), createdAt: new Date().toISOString() })).text,
  );
  key = await createTestKey();
});

/** A credential stored as `gatepass jwks credential create` stores it: bound to the issuer's live URL unless issuerUrl says otherwise. */
async function credential(
  issuer: string,
  row: { expiresAt?: number; revokedAt?: number; issuerUrl?: string | null } = {},
): Promise<{ id: string; credential: string }> {
  const created = await newPushCredential();
  const issuerUrl =
    row.issuerUrl === undefined
      ? issuer === "public"
        ? "https://gitlab.example.com"
        : `https://${issuer}.corp.example`
      : row.issuerUrl;
  await env.DB.prepare(
    "INSERT INTO push_credentials (id, issuer, issuer_url, secret_sha256, created_by, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, 'test', ?, ?, ?)",
  )
    .bind(
      created.id,
      issuer,
      issuerUrl,
      created.secretSha256,
      now(),
      row.expiresAt ?? now() + 3600,
      row.revokedAt ?? null,
    )
    .run();
  return created;
}

interface Answer {
  status: number;
  body: Record<string, any>;
  requestId: string;
}

/** One request through the app, waiting for what it left to waitUntil (the audit row, last use). */
async function send(path: string, init: RequestInit, bindings: Env = env as unknown as Env): Promise<Answer> {
  const ctx = createExecutionContext();
  const res = await app.request(`https://gatepass.test${path}`, init, bindings, ctx);
  await waitOnExecutionContext(ctx);
  return {
    status: res.status,
    body: (await res.json()) as Record<string, any>,
    requestId: res.headers.get("X-Request-Id")!,
  };
}

const push = (issuer: string, bearer: string, bindings?: Env) =>
  send(
    `/v1/admin/issuers/${issuer}/jwks`,
    {
      method: "PUT",
      headers: { Authorization: `Bearer ${bearer}`, "Content-Type": "application/json" },
      body: JSON.stringify(jwksOf(key)),
    },
    bindings,
  );

async function auditRow(requestId: string): Promise<Record<string, unknown>> {
  const row = await env.DB.prepare("SELECT * FROM audit_events WHERE request_id = ?")
    .bind(requestId)
    .first<Record<string, unknown>>();
  expect(row).not.toBeNull();
  return row!;
}

const lastUsed = async (id: string) =>
  (await env.DB.prepare("SELECT last_used_at FROM push_credentials WHERE id = ?")
    .bind(id)
    .first<{ last_used_at: number | null }>())!.last_used_at;
const stored = async (issuer: string) =>
  JSON.parse((await env.JWKS.get(jwksStorageKey(issuer))) ?? "null") as StoredKeySet | null;

describe("PUT /v1/admin/issuers/:name/jwks with a push credential", () => {
  it("pushes keys for its own issuer: the record and the audit row name the credential's id, its last use is noted", async () => {
    const alpha = await credential("alpha");
    const answer = await push("alpha", alpha.credential);
    expect(answer).toMatchObject({ status: 200, body: { issuer: "alpha", kids: [key.kid], pushed_by: alpha.id } });
    expect(await stored("alpha")).toMatchObject({ source: "pushed", pushed_by: alpha.id, keys: [{ kid: key.kid }] });
    expect(await lastUsed(alpha.id)).toBeGreaterThanOrEqual(now() - 5);
    const row = await auditRow(answer.requestId);
    expect(row).toMatchObject({
      route: "PUT /v1/admin/issuers/:name/jwks",
      actor: alpha.id,
      issuer: "alpha",
      decision: "allow",
      status: 200,
      error_code: null,
    });
    expect(JSON.stringify(row)).not.toContain(alpha.credential.slice(alpha.id.length));
  });

  it("refuses a credential for another issuer with push_credential_wrong_issuer, audited, and the other issuer's keys stay", async () => {
    await push("beta", "test-admin-token");
    const before = await env.JWKS.get(jwksStorageKey("beta"));
    const alpha = await credential("alpha");
    const answer = await push("beta", alpha.credential);
    expect(answer).toMatchObject({
      status: 403,
      body: { code: "push_credential_wrong_issuer", error: "access_denied" },
    });
    expect(answer.body.error_description).toBe(
      "This push credential pushes keys for issuer alpha only, not beta; use the credential created with --issuer beta.",
    );
    expect(await env.JWKS.get(jwksStorageKey("beta"))).toBe(before);
    expect(await auditRow(answer.requestId)).toMatchObject({
      actor: alpha.id,
      issuer: "beta",
      decision: "deny",
      status: 403,
      error_code: "push_credential_wrong_issuer",
    });
    expect(await lastUsed(alpha.id)).toBeNull();
  });

  it.each([
    ["an expired credential", "push_credential_expired", { expiresAt: now() - 1 }],
    ["a revoked credential", "push_credential_revoked", { revokedAt: now() - 60 }],
    [
      "a revoked credential that also expired",
      "push_credential_revoked",
      { revokedAt: now() - 60, expiresAt: now() - 1 },
    ],
  ])("refuses %s with %s and stores nothing", async (_name, code, row) => {
    const issuerCredential = await credential("alpha", row);
    const before = await env.JWKS.get(jwksStorageKey("alpha"));
    const answer = await push("alpha", issuerCredential.credential);
    expect(answer).toMatchObject({ status: 401, body: { code, error: "invalid_token" } });
    expect(await env.JWKS.get(jwksStorageKey("alpha"))).toBe(before);
    expect(await auditRow(answer.requestId)).toMatchObject({ actor: issuerCredential.id, error_code: code });
    expect(await lastUsed(issuerCredential.id)).toBeNull();
  });

  it("is accepted until the second before expires_at, by the Worker's clock", async () => {
    const t = now() + 7 * 86400;
    const at = (seconds: number) => createApp({ ...defaultDeps, now: () => seconds * 1000 });
    const alpha = await credential("alpha", { expiresAt: t });
    const request = () => ({
      method: "PUT",
      headers: { Authorization: `Bearer ${alpha.credential}` },
      body: JSON.stringify(jwksOf(key)),
    });
    expect((await at(t - 1).request("https://gatepass.test/v1/admin/issuers/alpha/jwks", request(), env)).status).toBe(
      200,
    );
    const expired = await at(t).request("https://gatepass.test/v1/admin/issuers/alpha/jwks", request(), env);
    expect({ status: expired.status, body: await expired.json() }).toMatchObject({
      status: 401,
      body: { code: "push_credential_expired" },
    });
  });

  it("answers an unknown id and a wrong secret alike (push_credential_invalid), so ids cannot be probed", async () => {
    const alpha = await credential("alpha");
    const unknownId = (await newPushCredential()).credential;
    const wrongSecret = `${alpha.id}_${"0".repeat(64)}`;
    const lastCharFlipped = `${alpha.credential.slice(0, -1)}${alpha.credential.endsWith("0") ? "1" : "0"}`;
    const answers = [
      await push("alpha", unknownId),
      await push("alpha", wrongSecret),
      await push("alpha", lastCharFlipped),
    ];
    for (const answer of answers)
      expect(answer).toMatchObject({ status: 401, body: { code: "push_credential_invalid" } });
    expect(new Set(answers.map((a) => a.body.error_description)).size).toBe(1);
    // A wrong secret proves nothing: the id it names is only claimed (issue 30), never the row's actor.
    expect(await auditRow(answers[1]!.requestId)).toMatchObject({
      actor: null,
      claimed_actor: alpha.id,
      issuer: null,
      claimed_issuer: "alpha",
      error_code: "push_credential_invalid",
    });
    expect(await lastUsed(alpha.id)).toBeNull();
  });

  it("refuses a malformed credential before any D1 read", async () => {
    const alpha = await credential("alpha");
    const noDatabase = {
      ...(env as unknown as Env),
      DB: {
        prepare: () => {
          throw new Error("D1 must not be read for a malformed credential");
        },
      } as unknown as D1Database,
    };
    for (const malformed of [
      "gpk_",
      "gpk_123",
      `${alpha.credential}0`,
      alpha.credential.slice(0, -1),
      alpha.credential.toUpperCase().replace("GPK_", "gpk_"),
      alpha.id,
      `${alpha.id}-${alpha.credential.slice(21)}`,
    ]) {
      const answer = await push("alpha", malformed, noDatabase);
      expect(answer, malformed).toMatchObject({ status: 401, body: { code: "push_credential_invalid" } });
    }
  });

  it("fails closed when D1 cannot be read: internal_error with a sentence, nothing stored", async () => {
    const alpha = await credential("alpha");
    const before = await env.JWKS.get(jwksStorageKey("alpha"));
    const failing = {
      ...(env as unknown as Env),
      DB: {
        prepare: () => {
          throw new Error("D1 is down");
        },
      } as unknown as D1Database,
    };
    const answer = await push("alpha", alpha.credential, failing);
    expect(answer).toMatchObject({ status: 500, body: { code: "internal_error" } });
    expect(answer.body.error_description).toContain("could not check the push credential");
    expect(await env.JWKS.get(jwksStorageKey("alpha"))).toBe(before);
  });

  it("works without GATEPASS_ADMIN_TOKEN, where any other bearer gets admin_disabled", async () => {
    const noAdmin = { ...(env as unknown as Env), GATEPASS_ADMIN_TOKEN: undefined };
    const alpha = await credential("alpha");
    expect(await push("alpha", alpha.credential, noAdmin)).toMatchObject({
      status: 200,
      body: { pushed_by: alpha.id },
    });
    const other = await push("alpha", "test-admin-token", noAdmin);
    expect(other).toMatchObject({ status: 403, body: { code: "admin_disabled" } });
    expect(other.body.error_description).toContain("takes only a push credential");
  });

  it("still takes the admin token, recorded as admin", async () => {
    const answer = await push("alpha", "test-admin-token");
    expect(answer).toMatchObject({ status: 200, body: { pushed_by: "admin" } });
    expect(await stored("alpha")).toMatchObject({ pushed_by: "admin" });
    expect(await auditRow(answer.requestId)).toMatchObject({ actor: "admin", issuer: "alpha", decision: "allow" });
  });

  it("a credential for an issuer without pushed keys gets past authentication to issuer_not_pushable", async () => {
    const pub = await credential("public");
    expect(await push("public", pub.credential)).toMatchObject({ status: 409, body: { code: "issuer_not_pushable" } });
  });
});

/**
 * A push whose body is held back until the test releases it: `requested` resolves when gatepass starts
 * reading the body (authentication is done by then), so the test can act in between without sleeping.
 */
function heldPush(
  bearer: string,
  pushApp = app,
): { requested: Promise<void>; release: () => void; answer: Promise<Answer> } {
  let requested!: () => void;
  let release!: () => void;
  const requestedP = new Promise<void>((resolve) => (requested = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        requested();
        await released;
        controller.enqueue(new TextEncoder().encode(JSON.stringify(jwksOf(key))));
        controller.close();
      },
    },
    { highWaterMark: 0 },
  );
  const answer = (async () => {
    const ctx = createExecutionContext();
    const res = await pushApp.request(
      "https://gatepass.test/v1/admin/issuers/alpha/jwks",
      { method: "PUT", headers: { Authorization: `Bearer ${bearer}` }, body, duplex: "half" } as RequestInit,
      env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    return {
      status: res.status,
      body: (await res.json()) as Record<string, any>,
      requestId: res.headers.get("X-Request-Id")!,
    };
  })();
  return { requested: requestedP, release, answer };
}

describe("a push credential is checked again when the keys are written", () => {
  it("a credential revoked while its push's body is arriving does not land the push (push_credential_revoked), and is not marked used", async () => {
    await push("alpha", "test-admin-token");
    const before = await env.JWKS.get(jwksStorageKey("alpha"));
    const alpha = await credential("alpha");
    const held = heldPush(alpha.credential);
    await held.requested; // authenticated: gatepass is reading the body
    await env.DB.prepare("UPDATE push_credentials SET revoked_at = ?, revoked_by = 'test' WHERE id = ?")
      .bind(now(), alpha.id)
      .run();
    held.release();
    const answer = await held.answer;
    expect(answer).toMatchObject({ status: 401, body: { code: "push_credential_revoked" } });
    expect(await env.JWKS.get(jwksStorageKey("alpha"))).toBe(before);
    expect(await lastUsed(alpha.id)).toBeNull();
  });

  it("a credential that expires while its push's body is arriving does not land the push (push_credential_expired), by the Worker's clock", async () => {
    let clock = now();
    const alpha = await credential("alpha", { expiresAt: clock + 60 });
    const held = heldPush(alpha.credential, createApp({ ...defaultDeps, now: () => clock * 1000 }));
    await held.requested;
    clock += 75; // the body arrives 75 s later
    held.release();
    expect(await held.answer).toMatchObject({ status: 401, body: { code: "push_credential_expired" } });
    expect(await lastUsed(alpha.id)).toBeNull();
  });

  it("a push that is refused after authentication (an invalid key set) does not count as a use", async () => {
    const alpha = await credential("alpha");
    const answer = await send("/v1/admin/issuers/alpha/jwks", {
      method: "PUT",
      headers: { Authorization: `Bearer ${alpha.credential}` },
      body: JSON.stringify({ keys: [{ kty: "oct", k: "c2VjcmV0" }] }),
    });
    expect(answer).toMatchObject({ status: 400, body: { code: "jwks_invalid" } });
    expect(await lastUsed(alpha.id)).toBeNull();
  });

  it.each([
    [
      "made for the issuer at another URL (its name was reused)",
      "https://old-alpha.corp.example",
      "was made for issuer alpha at https://old-alpha.corp.example; the live policy has alpha at https://alpha.corp.example.",
    ],
    [
      "made before credentials were bound to URLs",
      null,
      "was made before credentials were bound to their issuer's URL",
    ],
  ])("refuses a credential %s with push_credential_issuer_changed, storing nothing", async (_name, issuerUrl, says) => {
    await push("alpha", "test-admin-token");
    const before = await env.JWKS.get(jwksStorageKey("alpha"));
    const alpha = await credential("alpha", { issuerUrl });
    const answer = await push("alpha", alpha.credential);
    expect(answer).toMatchObject({
      status: 403,
      body: { code: "push_credential_issuer_changed", error: "access_denied" },
    });
    expect(answer.body.error_description).toContain(says);
    expect(answer.body.error_description).toContain("gatepass jwks credential create --issuer alpha");
    expect(await env.JWKS.get(jwksStorageKey("alpha"))).toBe(before);
    expect(await lastUsed(alpha.id)).toBeNull();
  });
});

describe("a push credential does nothing else", () => {
  it("every other admin route refuses a valid credential with admin_unauthorized, saying what it is for", async () => {
    const alpha = await credential("alpha");
    const others = app.routes
      .filter((route) => route.path.startsWith("/v1/admin/") && route.method !== "ALL")
      .filter((route) => !(route.method === "PUT" && route.path === "/v1/admin/issuers/:name/jwks"))
      .map((route) => ({ method: route.method, path: route.path.replace(":name", "alpha") }));
    expect(others.map((r) => `${r.method} ${r.path}`)).toEqual(
      expect.arrayContaining(["GET /v1/admin/status", "GET /v1/admin/audit"]),
    );
    // The push path with another method, and paths no route serves, want the admin token too.
    others.push(
      { method: "GET", path: "/v1/admin/issuers/alpha/jwks" },
      { method: "DELETE", path: "/v1/admin/issuers/alpha/jwks" },
      { method: "GET", path: "/v1/admin/credentials" },
    );
    for (const { method, path } of others) {
      const answer = await send(path, { method, headers: { Authorization: `Bearer ${alpha.credential}` } });
      expect(answer, `${method} ${path}`).toMatchObject({ status: 401, body: { code: "admin_unauthorized" } });
      expect(answer.body.error_description).toContain("only pushes keys for its issuer");
    }
    expect(await lastUsed(alpha.id)).toBeNull();
  });

  it("without GATEPASS_ADMIN_TOKEN, the other admin routes are off (admin_disabled), for a credential too", async () => {
    const noAdmin = { ...(env as unknown as Env), GATEPASS_ADMIN_TOKEN: undefined };
    const alpha = await credential("alpha");
    for (const path of ["/v1/admin/status", "/v1/admin/audit"]) {
      for (const bearer of [alpha.credential, "test-admin-token"]) {
        expect(await send(path, { headers: { Authorization: `Bearer ${bearer}` } }, noAdmin), path).toMatchObject({
          status: 403,
          body: { code: "admin_disabled" },
        });
      }
    }
  });

  it("reads of status and audit with the admin token are audited as admin", async () => {
    const answer = await send("/v1/admin/status", { headers: ADMIN });
    expect(answer.status).toBe(200);
    expect(await auditRow(answer.requestId)).toMatchObject({ route: "GET /v1/admin/status", actor: "admin" });
  });
});

// /v1/admin/*: operator endpoints behind the GATEPASS_ADMIN_TOKEN bearer secret (disabled when unset).
//   PUT /v1/admin/issuers/:name/jwks   replace the pushed key set of a private issuer
//   GET /v1/admin/status               issuers and key freshness, policy version, signing keys, errors
//   GET /v1/admin/audit                audit events (filters: project, target, decision, since, limit)

import { Hono, type MiddlewareHandler } from "hono";
import type { AppEnv } from "../app";
import { parseAuditFilter, queryAuditEvents, recentErrorCounts } from "../audit/query";
import { readConfig } from "../config";
import { nowSeconds } from "../deps";
import { GatepassError } from "../errors";
import { MAX_ADMIN_HEADER_LENGTH, MAX_JWKS_BYTES, TIME } from "../limits";
import { BodyTooLargeError, readCapped } from "../http/body";
import { validatePublicJwks } from "../verify/keyset";
import { waitUntilOf } from "../middleware";

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = readConfig(c.env).adminToken;
  if (!expected) throw new GatepassError("admin_disabled");
  const header = c.req.header("Authorization") ?? "";
  const presented = header.length <= MAX_ADMIN_HEADER_LENGTH ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1] : undefined;
  if (presented === undefined || !(await sameSecret(presented, expected))) throw new GatepassError("admin_unauthorized");
  await next();
};

/** Constant-time comparison: both sides are hashed first, so neither length nor content leaks through timing. */
async function sameSecret(presented: string, expected: string): Promise<boolean> {
  const digest = (text: string) => crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const [a, b] = await Promise.all([digest(presented), digest(expected)]);
  return crypto.subtle.timingSafeEqual(a, b);
}

export const adminRoutes = new Hono<AppEnv>();

adminRoutes.use("/v1/admin/*", requireAdmin);

adminRoutes.put("/v1/admin/issuers/:name/jwks", async (c) => {
  const name = c.req.param("name");
  const { policies, verifier } = c.get("services");
  const policy = await policies.current(c.env, waitUntilOf(c));
  const issuer = policy.issuers.find((candidate) => candidate.name === name);
  if (!issuer || issuer.keys.source !== "pushed") {
    throw new GatepassError("issuer_not_pushable", {
      description: issuer
        ? `Issuer ${name} gets its keys by ${issuer.keys.source}; only issuers with keys: { source: pushed } accept pushed keys.`
        : `No issuer named ${name} is configured in the active policy.`,
    });
  }
  const { keys } = validatePublicJwks(await readJsonBody(c.req.raw));
  const stored = await verifier.storePushedKeys(issuer, keys, c.env);
  return c.json({ issuer: name, kids: keys.map((key) => key.kid), fetched_at: stored.fetched_at }, 200, { "Cache-Control": "no-store" });
});

adminRoutes.get("/v1/admin/status", async (c) => {
  const { policies, verifier, signer, audit, deps } = c.get("services");
  const config = readConfig(c.env);
  const policy = await policies.current(c.env, waitUntilOf(c)).catch(() => undefined);
  const since = new Date(deps.now() - TIME.HOUR * 1000).toISOString();
  const [issuers, signingKeys, errors] = await Promise.all([
    policy ? verifier.keyStatus(policy.issuers, c.env) : [],
    signer.keyRing(config).then(
      (ring) => ({
        keys: ring.describe(nowSeconds(deps)),
        // A target whose algorithm has no current key answers signing_unavailable: say so before a job finds out.
        targets_without_key: [...(policy?.targets.values() ?? [])].filter((t) => !ring.algorithms().includes(t.signing_alg)).map((t) => t.name),
      }),
      (err: unknown) => ({ error: err instanceof GatepassError ? err.code : "internal_error" }),
    ),
    recentErrorCounts(c.env, since).catch(() => null),
  ]);
  return c.json(
    {
      policy: policy
        ? { version: policy.version, created_at: policy.snapshot.created_at, last_error: policies.lastError ?? null }
        : { version: null, last_error: policies.lastError ?? "no snapshot loaded" },
      issuers,
      signing_keys: signingKeys,
      audit: audit.status(),
      errors_last_hour: errors,
    },
    200,
    { "Cache-Control": "no-store" },
  );
});

adminRoutes.get("/v1/admin/audit", async (c) => {
  const events = await queryAuditEvents(c.env, parseAuditFilter(c.req.query()));
  return c.json({ events }, 200, { "Cache-Control": "no-store" });
});

async function readJsonBody(request: Request): Promise<unknown> {
  let text: string;
  try {
    text = await readCapped(request, MAX_JWKS_BYTES);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new GatepassError("request_too_large");
    throw new GatepassError("jwks_invalid", { description: "The request body is not UTF-8 text." });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new GatepassError("jwks_invalid", { description: "The request body is not JSON." });
  }
}

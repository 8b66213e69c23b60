// /v1/admin/*: operator endpoints behind the GATEPASS_ADMIN_TOKEN bearer secret (disabled when unset).
//   PUT /v1/admin/issuers/:name/jwks   replace the pushed key set of a private issuer; also takes a
//                                      push credential for that issuer (src/admin/push-credentials.ts)
//   GET /v1/admin/status               issuers and key freshness, policy version, signing keys, errors
//   GET /v1/admin/audit                audit events (filters: project, target, decision, since, limit)
// A push credential does nothing else. Status, audit and the policy routes (admin-policies.ts) also take
// a CI ID token whose job the active policy grants the route's capability (src/admin/ci-caller.ts);
// every other route wants the admin token.

import { Hono, type Context, type MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/app-env";
import {
  authenticatePushCredential,
  looksLikePushCredential,
  pushCredentialId,
  recordPushCredentialUse,
  type PushTarget,
} from "../admin/push-credentials";
import { parseAuditFilter, queryAuditEvents, recentErrorCounts } from "../audit/audit-query";
import { readConfig } from "../config";
import { nowSeconds } from "../deps";
import { GatepassError } from "../errors";
import { MAX_JWKS_BYTES, TIME } from "../limits";
import { BodyTooLargeError, readCapped } from "../http/capped-body";
import { NAME_PATTERN } from "../policy/schema-patterns";
import { stalePushedIssuers, type IssuerKeyStatus } from "../issuer-keys/stored-key-set";
import { validatePublicJwks } from "../issuer-keys/key-set-validation";
import { auditDraft, waitUntilOf } from "../http/request-context";
import { adminTokenMatches, presentedBearer } from "../admin/admin-token";
import { capabilityOfRoute } from "../admin/capability-routes";
import { requireCapability } from "../admin/ci-caller";
import { adminPolicyRoutes } from "./admin-policies";

const ONLY_PUSHES =
  "A push credential (gpk_…) only pushes keys for its issuer (PUT /v1/admin/issuers/<issuer>/jwks); this endpoint " +
  "needs the admin token.";

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = readConfig(c.env).adminToken;
  if (!expected) throw new GatepassError("admin_disabled");
  const presented = presentedBearer(c);
  if (presented === undefined || !(await adminTokenMatches(presented, expected))) {
    // Said from the shape alone: no lookup, so nothing about the credential is revealed.
    throw new GatepassError(
      "admin_unauthorized",
      presented !== undefined && looksLikePushCredential(presented) ? { description: ONLY_PUSHES } : {},
    );
  }
  auditDraft(c).actor = "admin";
  await next();
};

/** The push credential requirePusher accepted for a request, so the handler can check it again at write time. */
const acceptedCredential = new WeakMap<Request, string>();

/** Push credential refusals made after its secret matched (src/admin/push-credentials.ts checks the secret first). */
const SECRET_MATCHED_REFUSALS = new Set([
  "push_credential_revoked",
  "push_credential_expired",
  "push_credential_wrong_issuer",
  "push_credential_issuer_changed",
]);

/**
 * The key push: the admin token, or a push credential for the issuer in the path (even with no admin
 * token set). Checked before the body is read, so an unauthenticated caller cannot make gatepass read
 * one; a credential is checked again just before the write (recheckPusher).
 */
const requirePusher: MiddlewareHandler<AppEnv> = async (c, next) => {
  const name = c.req.param("name") ?? "";
  const draft = auditDraft(c);
  // The path's issuer and a presented credential id are only claims until the caller authenticates:
  // audited as such (claimed_*, junk), so a flood naming a real credential cannot pass for its failed pushes.
  const pathIssuer = NAME_PATTERN.test(name) ? name : undefined;
  draft.claimedIssuer = pathIssuer;
  const expected = readConfig(c.env).adminToken;
  const presented = presentedBearer(c);
  if (presented !== undefined && expected && (await adminTokenMatches(presented, expected))) {
    draft.actor = "admin";
    draft.issuer = pathIssuer;
  } else if (presented !== undefined && looksLikePushCredential(presented)) {
    draft.claimedActor = pushCredentialId(presented);
    await checkPushCredential(c, presented, { name }, pathIssuer);
    acceptedCredential.set(c.req.raw, presented);
  } else if (!expected) {
    throw new GatepassError("admin_disabled", {
      description:
        "GATEPASS_ADMIN_TOKEN is not set, so this endpoint takes only a push credential (gpk_…) for the issuer.",
    });
  } else {
    throw new GatepassError("admin_unauthorized");
  }
  await next();
};

/**
 * A push credential's id once it authenticates for `issuer`. The audit row names the credential and
 * its issuer as actor and issuer once its secret matched, refused or not: the caller holds it.
 */
async function checkPushCredential(
  c: Context<AppEnv>,
  presented: string,
  issuer: PushTarget,
  pathIssuer: string | undefined,
): Promise<string> {
  const draft = auditDraft(c);
  try {
    const id = await authenticatePushCredential(c.env, presented, issuer, nowSeconds(c.get("services").deps));
    draft.actor = id;
    draft.issuer = pathIssuer;
    return id;
  } catch (err) {
    if (err instanceof GatepassError && SECRET_MATCHED_REFUSALS.has(err.code)) {
      draft.actor = draft.claimedActor;
      draft.issuer = pathIssuer;
    }
    throw err;
  }
}

export const adminRoutes = new Hono<AppEnv>();

const PUSH_PATH = /^\/v1\/admin\/issuers\/[^/]+\/jwks$/;

// Every admin route wants the admin token, except the key push, which checks its own caller, and the
// routes a capability opens (capability-routes.ts), which also take a CI ID token granted it.
adminRoutes.use("/v1/admin/*", (c, next) => {
  if (c.req.method === "PUT" && PUSH_PATH.test(c.req.path)) return next();
  const capability = capabilityOfRoute(c.req.method, c.req.path);
  return capability ? requireCapability(capability)(c, next) : requireAdmin(c, next);
});
adminRoutes.route("/", adminPolicyRoutes);

adminRoutes.put("/v1/admin/issuers/:name/jwks", requirePusher, async (c) => {
  const name = c.req.param("name");
  const dropPrevious = parsePreviousParam(c.req.queries());
  const { policies, verifier } = c.get("services");
  const policy = await policies.current(c.env, waitUntilOf(c));
  const issuer = policy.issuers.find((candidate) => candidate.name === name);
  if (!issuer || issuer.keys.source !== "pushed") {
    throw new GatepassError("issuer_not_pushable", {
      description: issuer
        ? `Issuer ${name} gets its keys by ${issuer.keys.source}; only issuers with keys: { source: pushed } accept ` +
          `pushed keys.`
        : `No issuer named ${name} is configured in the active policy.`,
    });
  }
  const { keys } = validatePublicJwks(await readJsonBody(c.req.raw));
  const credentialId = await recheckPusher(c, issuer);
  const stored = await verifier.storePushedKeys(issuer, keys, c.env, {
    pushedBy: credentialId ?? "admin",
    dropPrevious,
  });
  // Only an accepted push counts as a use (`credential list`'s LAST USED).
  if (credentialId !== undefined) waitUntilOf(c)(recordPushCredentialUse(c.env, credentialId, stored.fetched_at));
  return c.json(
    {
      issuer: name,
      kids: keys.map((key) => key.kid),
      fetched_at: stored.fetched_at,
      pushed_by: stored.pushed_by,
      retired: (stored.retired ?? []).map((r) => ({ kid: r.key.kid, until: r.until })),
    },
    200,
    { "Cache-Control": "no-store" },
  );
});

/**
 * The push credential's id when a credential (not the admin token) authenticated this push, checked
 * again now, at write time, against the issuer as the live policy has it (name and URL): the body can
 * take long to arrive, and a credential revoked or expired meanwhile must not land its keys.
 */
async function recheckPusher(c: Context<AppEnv>, issuer: { name: string; url: string }): Promise<string | undefined> {
  const presented = acceptedCredential.get(c.req.raw);
  if (presented === undefined) return undefined;
  return checkPushCredential(c, presented, { name: issuer.name, url: issuer.url }, issuer.name);
}

/** Pushed issuers get `stale`: true when the cron warns about them (pushed_keys_stale). */
function markStalePushes(
  issuers: IssuerKeyStatus[],
  warnAfterSeconds: number,
): (IssuerKeyStatus & { stale?: boolean })[] {
  const stale = new Set(stalePushedIssuers(issuers, warnAfterSeconds).map((s) => s.issuer));
  return issuers.map((issuer) => (issuer.source === "pushed" ? { ...issuer, stale: stale.has(issuer.name) } : issuer));
}

/** `?previous=drop` ends the keys this push removes at once (a compromised key); `keep` (default) retires them. */
function parsePreviousParam(queries: Record<string, string[]>): boolean {
  const { previous, ...others } = queries;
  const unknown = Object.keys(others);
  if (unknown.length > 0)
    throw new GatepassError("request_invalid", {
      description: `Unknown parameter ${unknown.join(", ")}; the key push takes only previous=keep|drop.`,
    });
  if (previous === undefined) return false;
  if (previous.length !== 1 || (previous[0] !== "keep" && previous[0] !== "drop")) {
    throw new GatepassError("request_invalid", {
      description:
        "previous must be keep (removed keys verify for the issuer's max token age) or drop (they stop at once).",
    });
  }
  return previous[0] === "drop";
}

adminRoutes.get("/v1/admin/status", async (c) => {
  const { policies, verifier, signer, audit, requestLog, deps } = c.get("services");
  const config = readConfig(c.env);
  const policy = await policies.current(c.env, waitUntilOf(c)).catch(() => undefined);
  const since = new Date(deps.now() - TIME.HOUR * 1000).toISOString();
  const [issuers, signingKeys, errors] = await Promise.all([
    policy ? verifier.keyStatus(policy.issuers, c.env) : [],
    signer.keyRing(config).then(
      (ring) => ({
        keys: ring.describe(nowSeconds(deps)),
        // A target whose algorithm has no current key answers signing_unavailable: say so before a job finds out.
        targets_without_key: [...(policy?.targets.values() ?? [])]
          .filter((t) => !ring.algorithms().includes(t.signing_alg))
          .map((t) => t.name),
      }),
      (err: unknown) => ({ error: err instanceof GatepassError ? err.code : "internal_error" }),
    ),
    recentErrorCounts(c.env, since).catch(() => null),
  ]);
  return c.json(
    {
      policy: policy
        ? {
            version: policy.version,
            created_at: policy.snapshot.created_at,
            fallback_from: policies.servingFallbackFrom ?? null,
            last_error: policies.lastError ?? null,
          }
        : { version: null, last_error: policies.lastError ?? "no snapshot loaded" },
      issuers: markStalePushes(issuers, config.pushedKeysWarnAfterSeconds),
      signing_keys: signingKeys,
      audit: audit.status(),
      request_log: requestLog.status(),
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

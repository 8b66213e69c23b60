// The steps every credential endpoint shares: identify the CI job, let policy decide on the target,
// check the request against the target, mint, exchange upstream. Routes only parse and format.

import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { readConfig } from "../config";
import { nowSeconds } from "../deps";
import { auditDraft } from "../http/request-context";
import { enforceRateLimit } from "./request-rate-limit";
import { countUse, useLimit } from "./use-limits";
import { mintToken, type MintedToken } from "../mint/minted-token";
import { denialError, evaluate } from "../policy/evaluate";
import type { Credential, ExchangeRequest } from "../providers/provider-credential";
import { exchange } from "../providers/provider-dispatch";
import { UpstreamTimer } from "../providers/upstream-call";
import { resolveExchange } from "../providers/request-checks";
import type { Target, VerifiedIdentity } from "../types";
import { identifyCaller, type Caller } from "./identify-job";
import { vocabularyOf } from "../verify/issuer-kinds/claim-vocabulary";

export interface Authorized {
  caller: Caller;
  target: Target;
  rule: string;
}

/** Verifies the CI token (from `Authorization: Bearer` unless given) and applies policy to the target. */
export async function authorize(c: Context<AppEnv>, targetName: string, token?: string): Promise<Authorized> {
  // identifyCaller has already put the identity and policy version in the audit draft.
  const caller = await identifyCaller(c, token);
  await enforceRateLimit(c.env, caller.identity);
  return authorizeCaller(c, caller, targetName);
}

export function authorizeCaller(c: Context<AppEnv>, caller: Caller, targetName: string): Authorized {
  const draft = auditDraft(c);
  draft.target = targetName;
  const decision = evaluate(caller.policy, caller.identity, targetName);
  if (!decision.allowed) throw denialError(caller.identity, targetName);
  const target = caller.policy.targets.get(targetName);
  // evaluate() already throws target_unknown; this keeps the types honest.
  if (!target) throw denialError(caller.identity, targetName);
  draft.rule = decision.rule;
  return { caller, target, rule: decision.rule };
}

export interface Issued {
  credential: Credential;
  minted: MintedToken;
  /** Upstream latency for audit. */
  upstreamMs: number;
  now: number;
}

/** Checks the request against the target, mints gatepass's token and exchanges it upstream. */
export async function issue(c: Context<AppEnv>, authorized: Authorized, request: ExchangeRequest): Promise<Issued> {
  const { deps, signer } = c.get("services");
  const config = readConfig(c.env);
  const { target, rule, caller } = authorized;
  const resolved = resolveExchange(target, request);
  const limit = useLimit(caller.policy, caller.identity.issuer, target.name, rule);
  if (limit !== undefined) await countUse(c.env, caller.identity, target.name, limit);
  const keys = await signer.keyRing(config);
  const now = nowSeconds(deps);
  // The claims copied are the caller's issuer's (GitLab's, GitHub's, or its profile's `copy`).
  const copied = vocabularyOf(caller.policy.issuers.find((issuer) => issuer.name === caller.identity.issuer)).copied;
  const minted = await mintToken(keys, {
    issuer: config.issuerUrl,
    target,
    identity: caller.identity,
    rule,
    now,
    lifetimeSeconds: resolved.mintLifetimeSeconds,
    copied,
  });
  const timer = new UpstreamTimer();
  try {
    const { credential } = await exchange(target, minted, resolved, caller.identity, { deps, config, timer });
    return logged(c, authorized, { credential, minted, upstreamMs: timer.ms, now });
  } finally {
    // Recorded for failures too: a slow or failing upstream is exactly what audit should show.
    auditDraft(c).upstreamMs = Math.round(timer.ms);
  }
}

/** Adds what was issued to the request's single log line (one line per request keeps logging cheap). */
function logged(c: Context<AppEnv>, { target, rule, caller }: Authorized, issued: Issued): Issued {
  const { minted, upstreamMs } = issued;
  c.set("logFields", {
    outcome: "credential_issued",
    target: target.name,
    rule,
    policy_version: caller.policy.version,
    ...identityFields(caller.identity),
    minted_jti: minted.claims.jti,
    kid: minted.kid,
    upstream_ms: upstreamMs,
  });
  return issued;
}

/** What logs may say about a caller: names and the token's hash, never the token. */
function identityFields(identity: VerifiedIdentity): Record<string, unknown> {
  const claim = (name: string) => (typeof identity.claims[name] === "string" ? identity.claims[name] : undefined);
  return {
    issuer: identity.issuer,
    token_sha256: identity.tokenSha256,
    project_path: claim("project_path"),
    job_id: claim("job_id"),
  };
}

export const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" } as const;

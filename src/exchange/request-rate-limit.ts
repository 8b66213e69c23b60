// Request rate limit per issuer + project for credential requests and whoami, through the Workers rate limiting
// binding (no KV or D1 on the hot path). Keyed by project id (ids are never reused), else path.

import type { Env } from "../config";
import { GatepassError } from "../errors";
import { RATE_LIMIT_PERIOD_SECONDS } from "../limits";
import type { VerifiedIdentity } from "../types";

export async function enforceRateLimit(env: Env, identity: VerifiedIdentity): Promise<void> {
  if (!env.RATE_LIMITER) return;
  const project = identity.claims.project_id ?? identity.claims.project_path ?? identity.claims.sub ?? "";
  const { success } = await env.RATE_LIMITER.limit({ key: `${identity.issuer}\u0000${String(project)}` });
  if (!success) {
    throw new GatepassError("rate_limited", { headers: { "Retry-After": String(RATE_LIMIT_PERIOD_SECONDS) } });
  }
}

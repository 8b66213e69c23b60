// GET /v1/whoami: the verified, normalised identity of the calling CI job — what policies match on —
// with the targets it may use and the rule granting each. `?target=T` explains one target in terms
// of the token's own claims (which conditions it does not meet), never other rules' patterns. Both
// look only at the rules the policy index finds for the job (its project, namespace and other filed
// values), so a large policy costs about what one evaluation does.

import { Hono } from "hono";
import type { AppEnv } from "../http/app-env";
import { explainTarget, grantsFor } from "../policy/evaluate";
import { enforceRateLimit } from "../exchange/request-rate-limit";
import type { VerifiedIdentity } from "../types";
import { identifyCaller } from "../exchange/identify-job";
import { readParams } from "../http/request-params";

export function whoamiBody(identity: VerifiedIdentity) {
  return {
    issuer: identity.issuer,
    issuer_url: identity.issuerUrl,
    claims: identity.claims,
    token_sha256: identity.tokenSha256,
    issued_at: identity.issuedAt,
    expires_at: identity.expiresAt,
  };
}

export const whoamiRoutes = new Hono<AppEnv>().get("/v1/whoami", async (c) => {
  // The exchange endpoints' strict reader: an unknown, repeated or 17th parameter is refused, before the token is
  // looked at.
  const { target } = await readParams(c, ["target"]);
  const { identity, policy } = await identifyCaller(c);
  // The same per-project budget as credential requests: explaining is cheap, but not free.
  await enforceRateLimit(c.env, identity);
  const body = {
    ...whoamiBody(identity),
    policy_version: policy.version,
    grants: grantsFor(policy, identity),
    ...(target === undefined ? {} : { explain: explainTarget(policy, identity, target, "candidates") }),
  };
  return c.json(body, 200, { "Cache-Control": "no-store" });
});

// The first half of every credential request: the active policy (for its issuers) and the verified
// identity of the calling CI job.

import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import type { CompiledPolicy } from "../policy/compile-policy";
import type { VerifiedIdentity } from "../types";
import { claimedIssuerOf } from "../audit/claimed-issuer";
import { waitUntilOf } from "../http/request-context";
import { tokenDigest } from "../verify/verifier";
import { bearerToken } from "../http/bearer-token";

export interface Caller {
  policy: CompiledPolicy;
  identity: VerifiedIdentity;
}

export async function identifyCaller(
  c: Context<AppEnv>,
  token = bearerToken(c.req.header("Authorization")),
): Promise<Caller> {
  const { policies, verifier } = c.get("services");
  const waitUntil = waitUntilOf(c);
  const policy = await policies.current(c.env, waitUntil);
  const draft = c.get("audit");
  if (draft) draft.policyVersion = policy.version;
  try {
    const identity = await verifier.verify(token, policy.issuers, c.env, waitUntil);
    if (draft) draft.identity = identity;
    return { policy, identity };
  } catch (err) {
    // A refused token is audited by its hash as well (the same digest a verified one gets), so a leaked
    // token replayed after it expired (or against the wrong audience) can be traced.
    if (draft) {
      draft.tokenSha256 = await tokenDigest(token);
      // Also the issuer it claims (unverified, its own column), so concealed refusals can be found by issuer.
      draft.claimedIssuer = claimedIssuerOf(token, policy.issuers);
    }
    throw err;
  }
}

// Admin routes reached with a CI ID token instead of the admin token: the token is verified exactly
// like a credential request's (identifyCaller, the Verifier), and the active policy must grant the
// verified identity the route's capability (policy/capabilities.ts). The audit row's actor is then the
// pipeline's verified identity (ci:<issuer>:<project_id>:<job_id>), never anything the caller claims.
// The admin token keeps working on every route (bootstrap, break-glass).

import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/app-env";
import { readConfig } from "../config";
import { GatepassError } from "../errors";
import { auditDraft } from "../http/request-context";
import type { Capability } from "../policy/capabilities";
import { grantsCapability } from "../policy/evaluate";
import { claimValue } from "../policy/rule-condition";
import { enforceRateLimit } from "../exchange/request-rate-limit";
import { identifyCaller } from "../exchange/identify-job";
import type { VerifiedIdentity } from "../types";
import { looksLikePushCredential } from "./push-credentials";
import { adminTokenMatches, presentedBearer } from "./admin-token";

/** A compact JWS: three base64url segments. Anything else is taken for an admin token attempt. */
const COMPACT_JWT = /^Bearer[ \t]+[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+[ \t]*$/i;

/** The audit actor of a CI caller: only verified values (issuer name, project and job ids). */
export function ciActor(identity: VerifiedIdentity): string {
  const id = (claim: string) => {
    const value = claimValue(identity.claims, claim);
    return typeof value === "string" ? value : "-";
  };
  return `ci:${identity.issuer}:${id("project_id")}:${id("job_id")}`;
}

/** The admin token, or a CI ID token whose verified identity the active policy grants `capability`. */
export function requireCapability(capability: Capability): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const draft = auditDraft(c);
    const expected = readConfig(c.env).adminToken;
    const presented = presentedBearer(c);
    if (presented !== undefined && expected && (await adminTokenMatches(presented, expected))) {
      draft.actor = "admin";
      return next();
    }
    const header = c.req.header("Authorization") ?? "";
    if (!COMPACT_JWT.test(header)) {
      const takes =
        `this endpoint takes the admin token or a CI ID token (id_tokens:) whose job a policy rule ` +
        `grants ${capability}`;
      if (!expected)
        throw new GatepassError("admin_disabled", { description: `GATEPASS_ADMIN_TOKEN is not set, so ${takes}.` });
      const pushCredential = presented !== undefined && looksLikePushCredential(presented);
      throw new GatepassError("admin_unauthorized", {
        description: pushCredential
          ? `A push credential (gpk_…) only pushes keys for its issuer; ${takes}.`
          : `Send the admin token or a CI ID token as 'Authorization: Bearer …': ${takes}.`,
      });
    }
    // Refusals here are the credential endpoints' own (token_unverified until a signature verifies).
    const { policy, identity } = await identifyCaller(c);
    draft.actor = ciActor(identity);
    await enforceRateLimit(c.env, identity);
    const grant = grantsCapability(policy, identity, capability);
    if (!grant.allowed) {
      throw new GatepassError("admin_forbidden", {
        description:
          `No policy rule grants ${capability} to this job (issuer '${identity.issuer}', project_id ` +
          `'${claimValue(identity.claims, "project_id") ?? "(none)"}'). ` +
          `Add it to the allow list of a rule matching the policy repository's protected default branch ` +
          `(docs/operations.md, "Running without the admin token").`,
        details: { capability },
      });
    }
    draft.rule = grant.rule;
    return next();
  };
}

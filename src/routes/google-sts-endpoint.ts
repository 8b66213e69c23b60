// POST /v1/sts/token — speaks Google's STS protocol so that a Google external_account config
// (`format=gcloud`) can name gatepass as its token_url: Terraform and Google's client libraries
// then send the CI token here and refresh on their own. Form (or JSON) in, snake_case
// JSON out with an integer expires_in > 0; the target is named by `audience`.
//
// Unlike gatepass's own endpoints, the requested scopes are narrowed to those the target allows:
// these clients ask for fixed sets nobody can configure (Terraform adds userinfo.email), and granting
// fewer scopes than asked is what an OAuth server may do (RFC 6749 §3.3). A request none of whose
// scopes the target allows is still refused.

import { Hono } from "hono";
import type { AppEnv } from "../http/app-env";
import { GatepassError } from "../errors";
import { authorize, issue, NO_STORE } from "../exchange/exchange-flow";
import { oauthErrorResponse } from "../http/oauth-error-response";
import { invalid, parseScopes, readParams } from "../http/request-params";
import { BODY_ONLY, subjectToken, TOKEN_TYPE } from "./token-exchange-endpoint";
import { STS_PATH } from "../format/gcloud-config";

const PARAMS = [
  "grant_type",
  "audience",
  "scope",
  "requested_token_type",
  "subject_token",
  "subject_token_type",
] as const;

export const stsRoutes = new Hono<AppEnv>();

stsRoutes.post(STS_PATH, async (c) => {
  try {
    const params = await readParams(c, PARAMS, BODY_ONLY);
    const token = subjectToken(params);
    if (params.requested_token_type !== undefined && params.requested_token_type !== TOKEN_TYPE.accessToken) {
      throw invalid(`requested_token_type must be ${TOKEN_TYPE.accessToken}.`);
    }
    if (!params.audience)
      throw invalid("audience must name the gatepass target (as in the config from format=gcloud).");
    const authorized = await authorize(c, params.audience, token);
    if (authorized.target.type !== "gcp") {
      throw new GatepassError("format_unsupported", { description: "The STS endpoint serves gcp targets only." });
    }
    const issued = await issue(c, authorized, {
      scopes: allowedOf(parseScopes(params.scope), authorized.target.scopes),
    });
    if (issued.credential.kind !== "access_token") throw new GatepassError("internal_error");
    return c.json(
      {
        access_token: issued.credential.accessToken,
        issued_token_type: TOKEN_TYPE.accessToken,
        token_type: "Bearer",
        expires_in: Math.max(1, issued.credential.expiresAt - issued.now),
      },
      200,
      NO_STORE,
    );
  } catch (err) {
    return oauthErrorResponse(c, err, "google-sts");
  }
});

/** The requested scopes the target allows; all of them when none is allowed, so that the refusal names them. */
function allowedOf(requested: string[] | undefined, allowed: readonly string[]): string[] | undefined {
  const granted = requested?.filter((scope) => allowed.includes(scope));
  return granted?.length ? granted : requested;
}

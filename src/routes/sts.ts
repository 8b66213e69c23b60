// POST /v1/sts/token — speaks Google's STS protocol so that a Google external_account config
// (`format=gcloud`) can name gatepass as its token_url: gcloud, Terraform and Google's client
// libraries then send the CI token here and refresh on their own. Form (or JSON) in, snake_case
// JSON out with an integer expires_in > 0; the target is named by `audience`.

import { Hono } from "hono";
import type { AppEnv } from "../app";
import { GatepassError } from "../errors";
import { authorize, issue, NO_STORE } from "./exchange-flow";
import { oauthErrorResponse } from "./oauth-errors";
import { invalid, parseScopes, readParams } from "./params";
import { BODY_ONLY, subjectToken, TOKEN_TYPE } from "./token";
import { STS_PATH } from "../format/gcloud";

const PARAMS = ["grant_type", "audience", "scope", "requested_token_type", "subject_token", "subject_token_type"] as const;

export const stsRoutes = new Hono<AppEnv>();

stsRoutes.post(STS_PATH, async (c) => {
  try {
    const params = await readParams(c, PARAMS, BODY_ONLY);
    const token = subjectToken(params);
    if (params.requested_token_type !== undefined && params.requested_token_type !== TOKEN_TYPE.accessToken) {
      throw invalid(`requested_token_type must be ${TOKEN_TYPE.accessToken}.`);
    }
    if (!params.audience) throw invalid("audience must name the gatepass target (as in the config from format=gcloud).");
    const authorized = await authorize(c, params.audience, token);
    if (authorized.target.type !== "gcp") {
      throw new GatepassError("format_unsupported", { description: "The STS endpoint serves gcp targets only." });
    }
    const issued = await issue(c, authorized, { scopes: parseScopes(params.scope) });
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

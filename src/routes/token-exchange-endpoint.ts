// POST /v1/token — RFC 8693 token exchange: the CI token as subject_token, the target named by
// `audience` (or `resource`), errors per RFC 6749 §5.2.

import { Hono } from "hono";
import type { AppEnv } from "../http/app-env";
import { GatepassError } from "../errors";
import { MAX_TOKEN_BYTES } from "../limits";
import type { Credential } from "../providers/provider-credential";
import { authorize, issue, NO_STORE } from "../exchange/exchange-flow";
import { oauthErrorResponse } from "../http/oauth-error-response";
import { invalid, parseScopes, readParams } from "../http/request-params";

export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
export const TOKEN_TYPE = {
  jwt: "urn:ietf:params:oauth:token-type:jwt",
  idToken: "urn:ietf:params:oauth:token-type:id_token",
  accessToken: "urn:ietf:params:oauth:token-type:access_token",
} as const;

const PARAMS = [
  "grant_type",
  "subject_token",
  "subject_token_type",
  "resource",
  "audience",
  "scope",
  "requested_token_type",
] as const;
/** Token-carrying parameters, accepted in the body only (never the query string, which proxies log). */
export const BODY_ONLY = ["subject_token"] as const;

/** Shared by /v1/token and /v1/sts/token: grant type, subject token and its type. */
export function subjectToken(params: Record<string, string>): string {
  if (params.grant_type !== TOKEN_EXCHANGE_GRANT) throw new GatepassError("grant_type_unsupported");
  const token = params.subject_token;
  if (!token) throw invalid("subject_token is required: the CI job's ID token.");
  if (token.length > MAX_TOKEN_BYTES) throw new GatepassError("token_too_large");
  if (params.subject_token_type !== TOKEN_TYPE.jwt && params.subject_token_type !== TOKEN_TYPE.idToken) {
    throw invalid(`subject_token_type must be ${TOKEN_TYPE.jwt} or ${TOKEN_TYPE.idToken}.`);
  }
  return token;
}

export const tokenRoutes = new Hono<AppEnv>();

tokenRoutes.post("/v1/token", async (c) => {
  try {
    const params = await readParams(c, PARAMS, BODY_ONLY);
    const token = subjectToken(params);
    const { audience, resource } = params;
    if (audience !== undefined && resource !== undefined && audience !== resource) {
      throw invalid("audience and resource name different targets; name one target.");
    }
    const targetName = audience ?? resource;
    if (!targetName) throw invalid("Name the target in audience (or resource).");
    const authorized = await authorize(c, targetName, token);
    if (authorized.target.type === "aws") {
      throw new GatepassError("format_unsupported", {
        description: "AWS credentials are three values, not one token; use POST /v1/credentials/:target.",
      });
    }
    const issuedType = authorized.target.type === "oidc" ? TOKEN_TYPE.jwt : TOKEN_TYPE.accessToken;
    if (params.requested_token_type !== undefined && params.requested_token_type !== issuedType) {
      throw invalid(`This target issues ${issuedType}.`);
    }
    const issued = await issue(c, authorized, { scopes: parseScopes(params.scope) });
    return c.json(exchangeResponse(issued.credential, issued.now), 200, NO_STORE);
  } catch (err) {
    return oauthErrorResponse(c, err, "rfc8693");
  }
});

/** RFC 8693 §2.2.1 response. token_type is N_A for anything that is not an OAuth bearer access token. */
function exchangeResponse(credential: Credential, now: number) {
  const expires_in = Math.max(1, credential.expiresAt - now);
  switch (credential.kind) {
    case "access_token":
      return {
        access_token: credential.accessToken,
        issued_token_type: TOKEN_TYPE.accessToken,
        token_type: "Bearer",
        expires_in,
        scope: credential.scopes.join(" "),
      };
    case "id_token":
      return {
        access_token: credential.idToken,
        issued_token_type: credential.provider === "oidc" ? TOKEN_TYPE.jwt : TOKEN_TYPE.idToken,
        token_type: "N_A",
        expires_in,
      };
    case "vault":
      return {
        access_token: credential.clientToken,
        issued_token_type: TOKEN_TYPE.accessToken,
        token_type: "N_A",
        expires_in,
      };
    case "aws":
      throw new GatepassError("format_unsupported");
  }
}

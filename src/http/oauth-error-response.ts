// Errors in the OAuth token-endpoint shape (RFC 6749 §5.2) for /v1/token and /v1/sts/token: HTTP
// 400 with a §5.2 `error` for anything the client must change; server failures and 429 keep their
// status. gatepass's stable `code` and the request id still travel in the body.

import type { Context } from "hono";
import type { AppEnv } from "./app-env";
import { errorResponse, recordError } from "./error-response";
import { log } from "../log";
import { GatepassError, isGatepassError, toWireError, type ErrorCode, type OAuthError } from "../errors";

/**
 * rfc8693: a bad subject_token is `invalid_request` (RFC 8693 §2.2.2); google-sts: `invalid_grant`, as Google's STS
 * answers.
 */
export type OAuthFlavor = "rfc8693" | "google-sts";

const TARGET_REFUSALS: readonly ErrorCode[] = ["policy_denied", "target_unknown", "upstream_denied"];

export function oauthErrorResponse(c: Context<AppEnv>, err: unknown, flavor: OAuthFlavor): Response {
  const requestId = c.get("requestId");
  const error = isGatepassError(err) ? err : new GatepassError("internal_error", { cause: err });
  recordError(c, error);
  if (error.code === "internal_error") log("error", "unhandled_error", { request_id: requestId, error: err });
  if (error.status >= 500 || error.status === 429) return errorResponse(requestId, error);
  const body = { ...toWireError(error, requestId), error: tokenEndpointError(error, flavor) };
  return new Response(JSON.stringify(body), {
    status: 400,
    headers: {
      "Content-Type": "application/json",
      "Cache-Control": "no-store",
      Pragma: "no-cache",
      "X-Request-Id": requestId,
      ...error.headers,
    },
  });
}

export function tokenEndpointError(error: GatepassError, flavor: OAuthFlavor): OAuthError {
  if (error.oauthError === "invalid_token") return flavor === "rfc8693" ? "invalid_request" : "invalid_grant";
  if (flavor === "google-sts" && error.code === "policy_denied") return "unauthorized_client";
  // RFC 8693 §2.2.2: unwilling or unable to issue a token for the target → invalid_target.
  if (TARGET_REFUSALS.includes(error.code)) return "invalid_target";
  if (error.oauthError === "invalid_scope" || error.oauthError === "unsupported_grant_type") return error.oauthError;
  return "invalid_request";
}

// The JSON error answer every route gives (docs/errors.md), and the code a refusal is recorded under
// in the request's log line and audit row. Apart from app.ts so that route modules can answer errors
// themselves (oauth-error-response.ts) without importing the app that imports them.

import type { Context } from "hono";
import type { AppEnv } from "./app-env";
import { recordedError, toWireError, type GatepassError } from "../errors";

/**
 * The stable code for the request's log line and audit row. A refusal concealed on the wire (a token
 * whose signature did not verify) is recorded by its own code, and its sentence goes to the log line.
 */
export function recordError(c: Context<AppEnv>, error: GatepassError): void {
  const recorded = recordedError(error);
  c.set("errorCode", recorded.code);
  if (recorded !== error) c.set("logFields", { ...c.get("logFields"), reason: recorded.description });
}

export function errorResponse(requestId: string, err: GatepassError): Response {
  const headers = new Headers({ "Content-Type": "application/json", "Cache-Control": "no-store" });
  for (const [name, value] of Object.entries(err.headers)) headers.set(name, value);
  if (err.status === 401) headers.set("WWW-Authenticate", `Bearer error="${err.oauthError}"`);
  headers.set("X-Request-Id", requestId);
  return new Response(JSON.stringify(toWireError(err, requestId)), { status: err.status, headers });
}

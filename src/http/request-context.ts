// Per-request context: request id, services, one structured log line, and one audit event for every
// request to an identity, credential or admin endpoint (written off the critical path).

import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "./app-env";
import { auditClassOf, buildAuditEvent, type AuditDraft } from "../audit/audit-event";
import type { WaitUntil } from "../deps";
import type { Services } from "../services";

const AUDITED_PATH = /^\/(v1\/|access$)/;

export function requestContext(services: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = services.deps.now();
    const requestId = crypto.randomUUID();
    c.set("requestId", requestId);
    c.set("services", services);
    // Set before the route answers, so the response Hono builds (c.json, c.body) carries it. Set
    // after, it makes Hono copy the finished response into a new one: a second Response per request.
    c.header("X-Request-Id", requestId);
    const audited = AUDITED_PATH.test(c.req.path);
    if (audited) c.set("audit", { route: "" });

    await next();

    // A response built without the context (a route's own `new Response`) gets it the costly way.
    if (!c.res.headers.has("X-Request-Id")) c.header("X-Request-Id", requestId);
    const status = c.res.status;
    const errorCode = c.get("errorCode");
    const draft = c.get("audit");
    let authenticated = false;
    if (draft) {
      draft.route ||= `${c.req.method} ${c.req.routePath}`;
      const event = buildAuditEvent(draft, { requestId, status, errorCode, now: services.deps.now() });
      authenticated = auditClassOf(event) === "priority";
      waitUntilOf(c)(services.audit.write(c.env, event));
      // What policies plan replays: verified identities only, noted here and written in batches.
      const flush = draft.identity && services.seen.note(c.env, draft.identity, draft.target, event.decision);
      if (flush) waitUntilOf(c)(flush);
    }
    // Junk lines beyond the per-second budget are counted, not logged (RequestLog, src/log.ts).
    services.requestLog.write(
      status >= 500 ? "error" : "info",
      {
        request_id: requestId,
        method: c.req.method,
        path: c.req.path,
        status,
        code: errorCode,
        duration_ms: services.deps.now() - started,
        ...c.get("logFields"),
      },
      !authenticated,
    );
  };
}

/** The audit draft of this request, for routes to record what they learn (identity, target, rule...). */
export function auditDraft(c: Context<AppEnv>): AuditDraft {
  return c.get("audit") ?? { route: "" };
}

/** ExecutionContext.waitUntil when running in a Worker; a detached promise otherwise (unit tests). */
export function waitUntilOf(c: Context<AppEnv>): WaitUntil {
  try {
    const ctx = c.executionCtx;
    return (promise) => ctx.waitUntil(promise);
  } catch {
    return (promise) => void promise.catch(() => {});
  }
}

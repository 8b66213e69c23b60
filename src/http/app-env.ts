// The Hono environment every route and middleware shares: the Worker's bindings and the per-request
// variables. A leaf module (types only), so that route modules need not import the app that mounts them.

import type { AuditDraft } from "../audit/audit-event";
import type { Env } from "../config";
import type { Services } from "../services";

export interface AppVariables {
  requestId: string;
  services: Services;
  /** Present on audited routes; routes fill it in as they learn who is calling for what. */
  audit?: AuditDraft;
  /** Set by the error handler so the request log and audit event carry the stable code. */
  errorCode?: string;
  /** Extra facts for the request's log line (never secrets), e.g. what credential was issued. */
  logFields?: Record<string, unknown>;
}

export type AppEnv = { Bindings: Env; Variables: AppVariables };

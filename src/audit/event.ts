// The audit event: one per request to an identity, credential or admin endpoint. It carries the token's
// SHA-256, never the token, and nothing the caller could use as a credential. Under a flood, refusals
// of unverified callers may instead be counted in a summary row (folded_count, see fold.ts).

import type { VerifiedIdentity } from "../types";

export type AuditDecision = "allow" | "deny" | "error";

export interface AuditEvent {
  ts: string;
  request_id: string;
  route: string;
  issuer: string | null;
  token_sha256: string | null;
  jti: string | null;
  project_id: string | null;
  project_path: string | null;
  namespace_id: string | null;
  namespace_path: string | null;
  ref: string | null;
  ref_type: string | null;
  pipeline_id: string | null;
  job_id: string | null;
  user_login: string | null;
  target: string | null;
  rule: string | null;
  decision: AuditDecision;
  error_code: string | null;
  status: number;
  upstream_ms: number | null;
  policy_version: string | null;
  /** null for a request's own row; on a summary row, how many refusals it counts (from folded_from to ts). */
  folded_count: number | null;
  folded_from: string | null;
  /** Who made an admin request: "admin" (the admin token) or a push credential's id (gpk_…). */
  actor: string | null;
}

/** What a route learns while handling a request; the audit middleware completes it from the response. */
export interface AuditDraft {
  route: string;
  identity?: VerifiedIdentity;
  /** The SHA-256 of a token that was refused (a verified one's is in `identity`). */
  tokenSha256?: string;
  target?: string;
  rule?: string;
  upstreamMs?: number;
  policyVersion?: string;
  /** Admin requests: "admin" or the push credential's id, never the credential itself. */
  actor?: string;
  /** The issuer a request acts on when no token names one (an admin key push). */
  issuer?: string;
}

export const AUDIT_COLUMNS = [
  "ts", "request_id", "route", "issuer", "token_sha256", "jti", "project_id", "project_path",
  "namespace_id", "namespace_path", "ref", "ref_type", "pipeline_id", "job_id", "user_login",
  "target", "rule", "decision", "error_code", "status", "upstream_ms", "policy_version", "folded_count", "folded_from",
  "actor",
] as const satisfies readonly (keyof AuditEvent)[];

export function buildAuditEvent(
  draft: AuditDraft,
  outcome: { requestId: string; status: number; errorCode?: string; now: number },
): AuditEvent {
  const claims = draft.identity?.claims ?? {};
  const claim = (name: string): string | null => {
    const value = claims[name];
    return typeof value === "string" ? value : null;
  };
  return {
    ts: new Date(outcome.now).toISOString(),
    request_id: outcome.requestId,
    route: draft.route,
    issuer: draft.identity?.issuer ?? draft.issuer ?? null,
    token_sha256: draft.identity?.tokenSha256 ?? draft.tokenSha256 ?? null,
    jti: claim("jti"),
    project_id: claim("project_id"),
    project_path: claim("project_path"),
    namespace_id: claim("namespace_id"),
    namespace_path: claim("namespace_path"),
    ref: claim("ref"),
    ref_type: claim("ref_type"),
    pipeline_id: claim("pipeline_id"),
    job_id: claim("job_id"),
    user_login: claim("user_login"),
    target: draft.target ?? null,
    rule: draft.rule ?? null,
    decision: decisionOf(outcome.status, outcome.errorCode),
    error_code: outcome.errorCode ?? null,
    status: outcome.status,
    upstream_ms: draft.upstreamMs ?? null,
    policy_version: draft.policyVersion ?? null,
    folded_count: null,
    folded_from: null,
    actor: draft.actor ?? null,
  };
}

/**
 * How the audit queue treats an event when it is full (src/audit/writer.ts). `priority`: a verified
 * caller's request (its token's signature and claims checked, so `issuer` is set), whether allowed,
 * denied or failed, and every request that passed the admin token check. `junk`: everything anyone
 * can send without a credential (refused tokens, no token, unknown paths, failed admin
 * authentication). Decided by who the caller proved to be, never by which refusal code it got.
 */
export type AuditClass = "priority" | "junk";

const ADMIN_ROUTE = /^\S+ \/v1\/admin\//;
/** The admin gate's own refusals (src/routes/admin.ts requireAdmin): the caller is not an operator. */
const ADMIN_GATE_CODES = new Set(["admin_unauthorized", "admin_disabled"]);

export function auditClassOf(event: AuditEvent): AuditClass {
  if (event.issuer !== null) return "priority";
  if (ADMIN_ROUTE.test(event.route) && !ADMIN_GATE_CODES.has(event.error_code ?? "")) return "priority";
  return "junk";
}

/** Refusals of the caller (4xx) are denials; gatepass or upstream failures (5xx) are errors. */
function decisionOf(status: number, errorCode: string | undefined): AuditDecision {
  if (status < 400 && !errorCode) return "allow";
  return status >= 500 ? "error" : "deny";
}

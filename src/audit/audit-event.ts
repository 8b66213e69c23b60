// The audit event: one per request to an identity, credential or admin endpoint. It carries the token's
// SHA-256, never the token, and nothing the caller could use as a credential. Under a flood, refusals
// of unverified callers may instead be counted in a summary row (folded_count, see refusal-fold.ts).
// `issuer` and `actor` hold only what gatepass verified; what an unauthenticated caller merely named
// (a token's iss, a path issuer, a push credential id) is kept in `claimed_issuer` / `claimed_actor`.

import { MAX_CLAIMED_VALUE_LENGTH } from "../limits";
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
  /** Who made an admin request, once authenticated: "admin" (the admin token) or a push credential's id (gpk_…). */
  actor: string | null;
  /**
   * Unverified: the issuer a refused token names (configured name, else its iss) or a path issuer an unauthenticated
   * caller named.
   */
  claimed_issuer: string | null;
  /** Unverified: the push credential id an unauthenticated caller presented. */
  claimed_actor: string | null;
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
  /** Admin requests: "admin" or the push credential's id, never the credential itself; set only once authenticated. */
  actor?: string;
  /** The issuer an authenticated request acts on when no token names one (an admin key push). */
  issuer?: string;
  /** What the caller named before (or without) authenticating: recorded, never trusted. */
  claimedIssuer?: string;
  claimedActor?: string;
}

export const AUDIT_COLUMNS = [
  "ts",
  "request_id",
  "route",
  "issuer",
  "token_sha256",
  "jti",
  "project_id",
  "project_path",
  "namespace_id",
  "namespace_path",
  "ref",
  "ref_type",
  "pipeline_id",
  "job_id",
  "user_login",
  "target",
  "rule",
  "decision",
  "error_code",
  "status",
  "upstream_ms",
  "policy_version",
  "folded_count",
  "folded_from",
  "actor",
  "claimed_issuer",
  "claimed_actor",
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
    claimed_issuer: clip(draft.claimedIssuer),
    claimed_actor: clip(draft.claimedActor),
  };
}

/**
 * How the audit queue treats an event (src/audit/audit-writer.ts). `priority`: a caller that authenticated
 * (a verified token, so `issuer` is set; the admin token or a push credential whose secret matched, so
 * `actor` is set), whether allowed, denied or failed. `junk`: everything anyone can send without a
 * credential (refused tokens, no token, unknown paths, failed admin or push authentication, whatever
 * issuer or credential id it names), and a verified caller's refusals for being over its rate or use
 * limit, which it can repeat at will (folded per caller, see refusal-fold.ts). Junk is rate-budgeted and folds;
 * priority is never displaced by it.
 */
export type AuditClass = "priority" | "junk";

/** Refusals of a verified caller over its limits: answered without any work, so as cheap to flood as junk. */
const OVER_LIMIT_CODES = new Set(["rate_limited", "use_limit_exceeded"]);

export function auditClassOf(event: AuditEvent): AuditClass {
  if (OVER_LIMIT_CODES.has(event.error_code ?? "")) return "junk";
  return event.issuer !== null || event.actor !== null ? "priority" : "junk";
}

function clip(value: string | undefined): string | null {
  return value === undefined ? null : value.slice(0, MAX_CLAIMED_VALUE_LENGTH);
}

/** Refusals of the caller (4xx) are denials; gatepass or upstream failures (5xx) are errors. */
function decisionOf(status: number, errorCode: string | undefined): AuditDecision {
  if (status < 400 && !errorCode) return "allow";
  return status >= 500 ? "error" : "deny";
}

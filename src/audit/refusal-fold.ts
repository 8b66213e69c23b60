// Junk refusals beyond the rate budget (junk-budget.ts) or the queue's junk share are counted here instead
// of queued: one summary per (status, error code, caller), with how many, the route (or "*" when
// several), the claimed issuer (when all share it) and the first and last time. The caller is the
// verified issuer + project of an over-limit refusal (rate_limited, use_limit_exceeded), so one
// project's flood is on record as that project's; unauthenticated junk has none. The summaries become
// audit rows of their own (folded_count > 0), so a flood is on record with its size and shape while
// costing memory per distinct code and caller, not per request. Error codes are a closed set
// (src/errors.ts) and callers are verified ones, so the summaries of one window are few.

import type { AuditEvent } from "./audit-event";

interface Summary {
  route: string;
  issuer: string | null;
  projectId: string | null;
  projectPath: string | null;
  claimedIssuer: string | null;
  decision: AuditEvent["decision"];
  errorCode: string | null;
  status: number;
  count: number;
  first: string;
  last: string;
}

export class RefusalFolder {
  /** Refusals folded since the isolate started (written or not). */
  total = 0;
  private readonly open = new Map<string, Summary>();
  private openedMs = 0;
  private openCount = 0;

  /** Refusals counted in summaries not yet taken. */
  get pending(): number {
    return this.openCount;
  }

  fold(event: AuditEvent, nowMs: number): void {
    const key = `${event.status} ${event.error_code ?? ""} ${event.issuer ?? ""}\u0000${event.project_id ?? event.project_path ?? ""}`;
    const summary = this.open.get(key);
    if (summary) {
      summary.count++;
      if (summary.route !== event.route) summary.route = "*";
      if (summary.claimedIssuer !== event.claimed_issuer) summary.claimedIssuer = null;
      if (event.ts < summary.first) summary.first = event.ts;
      if (event.ts > summary.last) summary.last = event.ts;
    } else {
      if (this.open.size === 0) this.openedMs = nowMs;
      this.open.set(key, {
        route: event.route,
        issuer: event.issuer,
        projectId: event.project_id,
        projectPath: event.project_path,
        claimedIssuer: event.claimed_issuer,
        decision: event.decision,
        errorCode: event.error_code,
        status: event.status,
        count: 1,
        first: event.ts,
        last: event.ts,
      });
    }
    this.openCount++;
    this.total++;
  }

  /** Whether the open summaries have covered a whole window and should be written now. */
  windowElapsed(nowMs: number, windowMs: number): boolean {
    return this.open.size > 0 && nowMs - this.openedMs >= windowMs;
  }

  /** How long until the open summaries' window is over (0 when it is, or none is open). */
  windowRemainingMs(nowMs: number, windowMs: number): number {
    return this.open.size > 0 ? Math.max(0, this.openedMs + windowMs - nowMs) : 0;
  }

  /** The open summaries as audit rows (ts: the last refusal, folded_from: the first); starts a new window. */
  take(): AuditEvent[] {
    const rows = [...this.open.values()].map(summaryRow);
    this.open.clear();
    this.openCount = 0;
    return rows;
  }
}

function summaryRow(summary: Summary): AuditEvent {
  return {
    ts: summary.last,
    // Not a request's id: a summary stands for many requests, whose own ids were not kept.
    request_id: `folded-${crypto.randomUUID()}`,
    route: summary.route,
    issuer: summary.issuer,
    token_sha256: null,
    jti: null,
    project_id: summary.projectId,
    project_path: summary.projectPath,
    namespace_id: null,
    namespace_path: null,
    ref: null,
    ref_type: null,
    pipeline_id: null,
    job_id: null,
    user_login: null,
    target: null,
    rule: null,
    decision: summary.decision,
    error_code: summary.errorCode,
    status: summary.status,
    upstream_ms: null,
    policy_version: null,
    folded_count: summary.count,
    folded_from: summary.first,
    actor: null,
    claimed_issuer: summary.claimedIssuer,
    claimed_actor: null,
  };
}

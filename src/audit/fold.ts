// Junk refusals the audit queue has no room for are counted here instead of queued: one summary per
// (status, error code), with how many, the route (or "*" when several), and the first and last time.
// The summaries become audit rows of their own (folded_count > 0), so a flood is on record with its
// size and shape while costing memory per distinct code, not per request. Error codes are a closed
// set (src/errors.ts), so the summaries of one window are few.

import type { AuditEvent } from "./event";

interface Summary {
  route: string;
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
    const key = `${event.status} ${event.error_code ?? ""}`;
    const summary = this.open.get(key);
    if (summary) {
      summary.count++;
      if (summary.route !== event.route) summary.route = "*";
      if (event.ts < summary.first) summary.first = event.ts;
      if (event.ts > summary.last) summary.last = event.ts;
    } else {
      if (this.open.size === 0) this.openedMs = nowMs;
      this.open.set(key, { route: event.route, decision: event.decision, errorCode: event.error_code, status: event.status, count: 1, first: event.ts, last: event.ts });
    }
    this.openCount++;
    this.total++;
  }

  /** Whether the open summaries have covered a whole window and should be written now. */
  windowElapsed(nowMs: number, windowMs: number): boolean {
    return this.open.size > 0 && nowMs - this.openedMs >= windowMs;
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
    issuer: null, token_sha256: null, jti: null, project_id: null, project_path: null, namespace_id: null, namespace_path: null,
    ref: null, ref_type: null, pipeline_id: null, job_id: null, user_login: null, target: null, rule: null,
    decision: summary.decision,
    error_code: summary.errorCode,
    status: summary.status,
    upstream_ms: null,
    policy_version: null,
    folded_count: summary.count,
    folded_from: summary.first,
    actor: null,
  };
}

// Writes audit events to D1 off the critical path. If D1 fails, the event goes to the Worker log in
// full and the failure is counted: an event is never silently dropped.

import type { Env } from "../config";
import { log } from "../log";
import { AUDIT_COLUMNS, type AuditEvent } from "./event";

const INSERT_SQL = `INSERT INTO audit_events (${AUDIT_COLUMNS.join(", ")}) VALUES (${AUDIT_COLUMNS.map(() => "?").join(", ")})`;

export class AuditWriter {
  /** Events that could not be written to D1 since the isolate started (logged instead). */
  failures = 0;
  lastFailure: string | undefined;

  async write(env: Env, event: AuditEvent): Promise<void> {
    try {
      await env.DB.prepare(INSERT_SQL)
        .bind(...AUDIT_COLUMNS.map((column) => event[column]))
        .run();
    } catch (err) {
      this.failures += 1;
      this.lastFailure = err instanceof Error ? err.message : String(err);
      log("error", "audit_write_failed", { reason: this.lastFailure, failures: this.failures, audit: event });
    }
  }
}

/** Deletes events older than the retention period; returns how many were removed. */
export async function pruneAuditEvents(env: Env, retentionDays: number, nowMs: number): Promise<number> {
  const cutoff = new Date(nowMs - retentionDays * 86_400_000).toISOString();
  const result = await env.DB.prepare("DELETE FROM audit_events WHERE ts < ?").bind(cutoff).run();
  return result.meta.changes ?? 0;
}

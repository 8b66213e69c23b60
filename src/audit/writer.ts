// Writes audit events to D1 off the critical path, by group commit: one request at a time leads,
// inserting queued events batch by batch (in its waitUntil) until the queue is empty; requests that
// arrive meanwhile only queue their event and are done. Under load D1 sees one statement per batch
// instead of one per request, and no request waits on another's promise (which workerd makes costly).
// A leader's term is short, so no single waitUntil runs long and a stuck insert cannot hold the
// queue. If D1 fails or does not answer within AUDIT_INSERT_TIMEOUT_MS, the batch goes to the Worker
// log in full and the failure is counted: an event is never silently dropped (a late insert may still
// land, so such an event can appear in both).

import type { Env } from "../config";
import type { Deps } from "../deps";
import { AUDIT_BATCH_LINGER_MS, AUDIT_INSERT_TIMEOUT_MS, AUDIT_LEADER_TERM_MS, MAX_AUDIT_BATCH_LENGTH, MAX_AUDIT_BATCH_EVENTS, TIME } from "../limits";
import { log } from "../log";
import { AUDIT_COLUMNS, type AuditEvent } from "./event";

// One statement and one bound parameter for any number of rows (D1 caps bound parameters at 100,
// and a batch of prepared statements would count one query per row).
const INSERT_SQL =
  `INSERT INTO audit_events (${AUDIT_COLUMNS.join(", ")}) ` +
  `SELECT ${AUDIT_COLUMNS.map((column) => `json_extract(value, '$.${column}')`).join(", ")} FROM json_each(?) ORDER BY key`;

interface Batch {
  events: AuditEvent[];
  /** The events as JSON, serialised once when queued. */
  rows: string[];
  /** Length of the batch's JSON array so far, in UTF-16 code units. */
  length: number;
}

export class AuditWriter {
  /** Events that could not be written to D1 since the isolate started (logged instead). */
  failures = 0;
  lastFailure: string | undefined;
  /** Batches of events not yet taken by a leader, oldest first; only the last one grows. */
  private readonly queue: Batch[] = [];
  private leader: { sinceMs: number } | undefined;

  /** `lingerMs`: tests that drive the whole app pass 0 (each request would otherwise wait for its own batch). */
  constructor(private readonly deps: Pick<Deps, "now">, private readonly lingerMs = AUDIT_BATCH_LINGER_MS) {}

  /**
   * Queues the event. The returned promise (for waitUntil) settles once this request's leadership,
   * if it took it, has written the queue to D1 or the log; for other requests it settles at once.
   * Never rejects.
   */
  write(env: Env, event: AuditEvent): Promise<void> {
    const row = JSON.stringify(event);
    let tail = this.queue.at(-1);
    if (!tail || tail.events.length >= MAX_AUDIT_BATCH_EVENTS || tail.length + row.length > MAX_AUDIT_BATCH_LENGTH) {
      tail = { events: [], rows: [], length: 0 };
      this.queue.push(tail);
    }
    tail.events.push(event);
    tail.rows.push(row);
    tail.length += row.length + 1;

    const now = this.deps.now();
    if (this.leader && now - this.leader.sinceMs < AUDIT_LEADER_TERM_MS) return Promise.resolve();
    // No leader, or its term is over (it stops after the insert in flight): this request leads.
    const term = { sinceMs: now };
    this.leader = term;
    return this.drain(env, term);
  }

  private async drain(env: Env, term: { sinceMs: number }): Promise<void> {
    try {
      while (this.leader === term && this.queue.length > 0) {
        // Linger so that concurrent requests' events join the batch: fewer, larger inserts.
        await new Promise((resolve) => setTimeout(resolve, this.lingerMs));
        await this.insert(env, this.queue.shift()!);
      }
    } finally {
      if (this.leader === term) this.leader = undefined;
    }
  }

  private async insert(env: Env, { events, rows }: Batch): Promise<void> {
    try {
      await withinTimeout(env.DB.prepare(INSERT_SQL).bind(`[${rows.join(",")}]`).run());
    } catch (err) {
      this.failures += events.length;
      this.lastFailure = err instanceof Error ? err.message : String(err);
      for (const event of events) {
        log("error", "audit_write_failed", { reason: this.lastFailure, failures: this.failures, audit: event });
      }
    }
  }
}

function withinTimeout<T>(insert: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`D1 did not answer the insert within ${AUDIT_INSERT_TIMEOUT_MS} ms`)), AUDIT_INSERT_TIMEOUT_MS);
  });
  return Promise.race([insert, timeout]).finally(() => clearTimeout(timer));
}

/** Deletes events older than the retention period; returns how many were removed. */
export async function pruneAuditEvents(env: Env, retentionDays: number, nowMs: number): Promise<number> {
  const cutoff = new Date(nowMs - retentionDays * TIME.DAY * 1000).toISOString();
  const result = await env.DB.prepare("DELETE FROM audit_events WHERE ts < ?").bind(cutoff).run();
  return result.meta.changes ?? 0;
}

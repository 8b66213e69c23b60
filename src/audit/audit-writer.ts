// Writes audit events to D1 off the critical path, in batches, holding a bounded amount of memory
// however fast requests come (docs/storage.md, "D1 audit_events").
//
// Queue. Each event waits as one JSON row in its class (auditClassOf): priority (authenticated callers)
// or junk (whatever anyone can send without a credential, and verified callers' over-limit refusals).
// Junk first passes a rate budget (junk-budget.ts): AUDIT_JUNK_ROWS_PER_SECOND rows of its own a second,
// whatever D1's speed, and AUDIT_MAX_JUNK_ROWS_PER_DAY rows a day, beyond which it is only counted.
// What the isolate holds, waiting or being inserted, is capped (MAX_AUDIT_QUEUE_EVENTS and _BYTES),
// and junk only gets a share of it (MAX_AUDIT_QUEUED_JUNK_*), so no caller's over-limit refusals hold
// more than that share. Junk beyond its budget or share is folded into counted summary rows (refusal-fold.ts),
// written once per AUDIT_FOLD_WINDOW_MS (a drain with nothing else to do lingers until then). A
// priority event that finds the queue full makes waiting junk give way (folded, newest first); only
// when no junk is left to fold does it go to the Worker log in full instead (audit_queue_full, counted).
// So nothing is dropped silently, and a flood of junk never costs a verified caller's row.
//
// Inserts. A batch takes due summaries (their window over), then priority rows, then junk, up to MAX_AUDIT_BATCH_EVENTS
// rows and MAX_AUDIT_BATCH_LENGTH characters: one statement. The request whose event completes a full
// batch inserts it at once, in its own waitUntil, if one of AUDIT_MAX_INSERTS_IN_FLIGHT slots is free;
// a partial batch first waits AUDIT_BATCH_LINGER_MS (one request lingers at a time) so that concurrent
// events join it. A request that inserted goes on with the next batch while there is one and its term
// (AUDIT_DRAIN_TERM_MS) lasts; the others only queue their event and are done. No request waits on
// another request's promise (which workerd makes costly).
//
// Failures. If D1 fails or does not answer within AUDIT_INSERT_TIMEOUT_MS, the batch goes to the
// Worker log in full and the failure is counted (a late insert may still land, so such an event can
// appear in both). An insert still unsettled past that timeout (its request context gone, so its timer
// never fires) is given up on likewise by the next write, so it cannot keep a slot.

import type { Env } from "../config";
import type { Deps } from "../deps";
import {
  AUDIT_BATCH_LINGER_MS,
  AUDIT_DRAIN_TERM_MS,
  AUDIT_JUNK_ROWS_PER_SECOND,
  AUDIT_MAX_JUNK_ROWS_PER_DAY,
  AUDIT_FOLD_WINDOW_MS,
  AUDIT_INSERT_TIMEOUT_MS,
  AUDIT_MAX_INSERTS_IN_FLIGHT,
  MAX_AUDIT_BATCH_EVENTS,
  MAX_AUDIT_BATCH_LENGTH,
  MAX_AUDIT_QUEUE_BYTES,
  MAX_AUDIT_QUEUE_EVENTS,
  MAX_AUDIT_QUEUED_JUNK_BYTES,
  MAX_AUDIT_QUEUED_JUNK_EVENTS,
  TIME,
} from "../limits";
import { log } from "../log";
import { AUDIT_COLUMNS, auditClassOf, type AuditEvent } from "./audit-event";
import { JunkBudget } from "./junk-budget";
import { RefusalFolder } from "./refusal-fold";
import { BatchBuilder, EventQueue, memoryBytes, type Held } from "./event-queue";

// One statement and one bound parameter for any number of rows (D1 caps bound parameters at 100,
// and a batch of prepared statements would count one query per row).
const INSERT_SQL =
  `INSERT INTO audit_events (${AUDIT_COLUMNS.join(", ")}) ` +
  `SELECT ${AUDIT_COLUMNS.map((column) => `json_extract(value, '$.${column}')`).join(", ")} FROM json_each(?) ORDER ` +
  `BY key`;

interface Insert {
  /** The batch as one JSON array: the bound parameter, and what is logged if the insert fails. */
  json: string;
  rows: number;
  /** What the batch's rows hold of each class, released when the insert settles. */
  priority: Held;
  junk: Held;
  startedMs: number;
}

export type Sleep = (ms: number) => Promise<void>;

const timerSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class AuditWriter {
  /** Events that could not be written to D1 since the isolate started (logged instead). */
  failures = 0;
  lastFailure: string | undefined;
  /** Priority events that found the queue full with no junk left to fold (logged instead). */
  overflows = 0;
  private readonly priority = new EventQueue();
  private readonly junk = new EventQueue();
  private readonly folder = new RefusalFolder();
  private readonly inserts = new Set<Insert>();
  /** Until then a request is lingering for the partial batch (see linger()). */
  private lingerUntilMs = 0;

  /** sleep: the linger's timer; budget: the junk rate budget (tests pass their own, e.g. a small daily cap). */
  constructor(
    private readonly deps: Pick<Deps, "now">,
    private readonly sleep: Sleep = timerSleep,
    private readonly budget = new JunkBudget(AUDIT_JUNK_ROWS_PER_SECOND, AUDIT_MAX_JUNK_ROWS_PER_DAY),
  ) {}

  /**
   * Queues the event (or folds or logs it, when the queue is full). The returned promise (for
   * waitUntil) settles once the inserts this request took on have settled; for most requests at once.
   * Never rejects.
   */
  write(env: Env, event: AuditEvent): Promise<void> {
    if (auditClassOf(event) === "priority") this.queuePriority(event);
    else this.queueJunk(event);
    this.reclaimStuckInserts();
    // A full batch: this request inserts it if a slot is free (drain checks). A partial one: this
    // request lingers for it, unless another already does.
    const takeOn = this.fullBatchWaiting() || (this.hasWork() && !this.someoneLingers());
    return takeOn ? this.drain(env) : Promise.resolve();
  }

  /** This isolate's audit queue, for GET /v1/admin/status. */
  status() {
    const held = this.held();
    return {
      write_failures_this_isolate: this.failures,
      last_failure: this.lastFailure ?? null,
      queued_events: held.events,
      queued_bytes: held.bytes,
      queued_junk_events: this.junk.held.events,
      inserts_in_flight: this.inserts.size,
      queue_limit: { events: MAX_AUDIT_QUEUE_EVENTS, bytes: MAX_AUDIT_QUEUE_BYTES },
      folded_refusals_this_isolate: this.folder.total,
      folded_refusals_unwritten: this.folder.pending,
      logged_over_cap_this_isolate: this.overflows,
      ...this.budget.status(this.deps.now()),
    };
  }

  private queueJunk(event: AuditEvent): void {
    const now = this.deps.now();
    if (this.budget.dayFull(now)) {
      if (this.budget.countOverCap(now))
        log("warn", "audit_junk_daily_cap", {
          cap: AUDIT_MAX_JUNK_ROWS_PER_DAY,
          detail: "further junk refusals today are counted in admin status, not stored",
        });
      return;
    }
    // Over the second's budget, or the share is full: fold without serialising the event at all.
    if (!this.junkHasRoom(0) || !this.budget.admitRow(now)) return this.folder.fold(event, now);
    const row = JSON.stringify(event);
    const bytes = memoryBytes(row);
    if (this.junkHasRoom(bytes)) this.junk.push(row, bytes);
    else this.folder.fold(event, this.deps.now());
  }

  private queuePriority(event: AuditEvent): void {
    const row = JSON.stringify(event);
    const bytes = memoryBytes(row);
    while (!this.hasRoom(bytes)) {
      const junk = this.junk.popNewest();
      if (junk === undefined) {
        this.overflows++;
        log("error", "audit_queue_full", { overflows: this.overflows, audit: event });
        return;
      }
      this.folder.fold(JSON.parse(junk) as AuditEvent, this.deps.now());
    }
    this.priority.push(row, bytes);
  }

  private held(): Held {
    return {
      events: this.priority.held.events + this.junk.held.events,
      bytes: this.priority.held.bytes + this.junk.held.bytes,
    };
  }

  private hasRoom(bytes: number): boolean {
    const held = this.held();
    return held.events < MAX_AUDIT_QUEUE_EVENTS && held.bytes + bytes <= MAX_AUDIT_QUEUE_BYTES;
  }

  private junkHasRoom(bytes: number): boolean {
    return this.junk.hasRoom(bytes, MAX_AUDIT_QUEUED_JUNK_EVENTS, MAX_AUDIT_QUEUED_JUNK_BYTES) && this.hasRoom(bytes);
  }

  private hasWork(): boolean {
    return this.priority.waiting + this.junk.waiting > 0 || this.folder.pending > 0;
  }

  /** A partial batch waits AUDIT_BATCH_LINGER_MS; summaries alone wait for their window to end. */
  private lingerMs(): number {
    if (this.priority.waiting + this.junk.waiting > 0) return AUDIT_BATCH_LINGER_MS;
    return Math.max(AUDIT_BATCH_LINGER_MS, this.folder.windowRemainingMs(this.deps.now(), AUDIT_FOLD_WINDOW_MS));
  }

  private fullBatchWaiting(): boolean {
    return (
      this.priority.waiting + this.junk.waiting >= MAX_AUDIT_BATCH_EVENTS ||
      this.priority.waitingLength + this.junk.waitingLength >= MAX_AUDIT_BATCH_LENGTH
    );
  }

  private async drain(env: Env): Promise<void> {
    const started = this.deps.now();
    let lingered = false;
    let waitedForSummaries = false;
    while (this.hasWork() && this.deps.now() - started < AUDIT_DRAIN_TERM_MS) {
      if (!lingered && !this.fullBatchWaiting()) {
        // A partial batch: give concurrent events time to join it, unless another request already does.
        if (this.someoneLingers()) return;
        await this.linger(this.lingerMs());
        lingered = true;
        continue;
      }
      this.reclaimStuckInserts();
      // Every slot busy: the requests holding them go on with this batch when their insert is done.
      if (this.inserts.size >= AUDIT_MAX_INSERTS_IN_FLIGHT) return;
      lingered = false;
      const batch = this.takeBatch();
      if (batch.rows > 0) {
        await this.insert(env, batch);
      } else {
        // Only summaries whose window is not over: linger once more until it is (lingerMs), then leave
        // them to a later request rather than spin if the clock says otherwise.
        if (waitedForSummaries) return;
        waitedForSummaries = true;
      }
    }
  }

  /**
   * One request at a time lingers. One not back after twice the linger is presumed gone: workerd drops
   * the timers of a request context it cancels (as when a client disconnects), and a lingerer that
   * never wakes must not stop every later request from lingering, and so partial batches from leaving.
   */
  private async linger(ms: number): Promise<void> {
    const until = this.deps.now() + 2 * ms;
    this.lingerUntilMs = until;
    try {
      await this.sleep(ms);
    } finally {
      if (this.lingerUntilMs === until) this.lingerUntilMs = 0;
    }
  }

  private someoneLingers(): boolean {
    return this.deps.now() < this.lingerUntilMs;
  }

  private takeBatch(): Insert {
    const now = this.deps.now();
    const batch = new BatchBuilder(MAX_AUDIT_BATCH_EVENTS, MAX_AUDIT_BATCH_LENGTH);
    // Summaries go first, once their window is over: per-second rows whatever D1's speed. They are one
    // row per (status, code, over-limit caller), a few hundred characters each, so they fit.
    if (this.folder.windowElapsed(now, AUDIT_FOLD_WINDOW_MS)) {
      const summaries = this.folder.take();
      this.budget.countSummaries(summaries.length, now);
      for (const summary of summaries) batch.add(JSON.stringify(summary));
    }
    const priority = this.priority.takeInto(batch);
    const junk = this.junk.takeInto(batch);
    return { json: `[${batch.rows.join(",")}]`, rows: batch.rows.length, priority, junk, startedMs: now };
  }

  private async insert(env: Env, insert: Insert): Promise<void> {
    this.inserts.add(insert);
    try {
      await withinTimeout(env.DB.prepare(INSERT_SQL).bind(insert.json).run());
      this.settle(insert);
    } catch (err) {
      this.settle(insert, err instanceof Error ? err.message : String(err));
    }
  }

  /** Releases what the batch held; a failed batch goes to the log, each event in full. Once per batch. */
  private settle(insert: Insert, failure?: string): void {
    if (!this.inserts.delete(insert)) return; // given up on already
    this.priority.release(insert.priority);
    this.junk.release(insert.junk);
    if (failure === undefined) return;
    this.failures += insert.rows;
    this.lastFailure = failure;
    for (const event of JSON.parse(insert.json) as AuditEvent[]) {
      log("error", "audit_write_failed", { reason: failure, failures: this.failures, audit: event });
    }
  }

  private reclaimStuckInserts(): void {
    const now = this.deps.now();
    for (const insert of this.inserts) {
      if (now - insert.startedMs >= AUDIT_INSERT_TIMEOUT_MS) {
        this.settle(insert, `D1 did not answer the insert within ${AUDIT_INSERT_TIMEOUT_MS} ms`);
      }
    }
  }
}

function withinTimeout<T>(insert: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`D1 did not answer the insert within ${AUDIT_INSERT_TIMEOUT_MS} ms`)),
      AUDIT_INSERT_TIMEOUT_MS,
    );
  });
  return Promise.race([insert, timeout]).finally(() => clearTimeout(timer));
}

/** Deletes events older than the retention period; returns how many were removed. */
export async function pruneAuditEvents(env: Env, retentionDays: number, nowMs: number): Promise<number> {
  const cutoff = new Date(nowMs - retentionDays * TIME.DAY * 1000).toISOString();
  const result = await env.DB.prepare("DELETE FROM audit_events WHERE ts < ?").bind(cutoff).run();
  return result.meta.changes ?? 0;
}

// The distinct identities gatepass verified, for `gatepass policies plan` to replay a proposed policy
// against (D1 seen_identities, docs/storage.md). One row per issuer and decision-relevant claim set,
// with first and last seen, a count, the targets asked for and the last decision.
//
// Off the critical path, like audit: a request only appends a reference to its verified identity to a
// bounded list (no hashing, no JSON); the canonical claims, their SHA-256 and the aggregation happen
// when the list is flushed, in one D1 statement, at most every SEEN_IDENTITIES_FLUSH_MS per isolate or
// when the list is full, in that request's waitUntil, one flush at a time. Notes beyond the list's cap
// are counted, not kept; a failed or late flush is logged with its counts (never its claims) and its
// rows are gone: replay data is a sample of what was seen, never a record anything relies on.
//
// Recorded: the normalised claims a rule can name, without the token's times and nonce, per-job and
// per-run ids and commit hashes (REPLAY_UNRECORDED_CLAIMS), which would make every job its own row.
// No token, token hash or anything usable as a credential.

import type { Env } from "../config";
import type { Deps } from "../deps";
import { sha256Hex } from "../encoding";
import {
  MAX_SEEN_IDENTITY_CLAIMS_LENGTH,
  MAX_SEEN_IDENTITY_NOTES,
  MAX_SEEN_IDENTITY_TARGETS,
  SEEN_IDENTITIES_FLUSH_MS,
  SEEN_IDENTITIES_FLUSH_TIMEOUT_MS,
} from "../limits";
import { log } from "../log";
import type { NormalizedClaims, VerifiedIdentity } from "../types";
import type { AuditDecision } from "./audit-event";

/**
 * Claims left out of a recorded identity: times and nonce, ids that differ for every job or run, and
 * commit hashes (which differ for every push). A rule that names one is replayed as if it were missing.
 */
export const REPLAY_UNRECORDED_CLAIMS: ReadonlySet<string> = new Set([
  "iss",
  "iat",
  "nbf",
  "exp",
  "jti",
  "job_id",
  "pipeline_id",
  "run_id",
  "run_number",
  "run_attempt",
  "runner_id",
  "sha",
  "workflow_sha",
  "job_workflow_sha",
]);

interface Note {
  identity: VerifiedIdentity;
  target: string | undefined;
  decision: AuditDecision;
  ms: number;
}

/** One seen_identities row as the flush's JSON parameter carries it. */
export interface SeenRow {
  k: string; // claims_sha256
  i: string; // issuer
  c: string; // claims (canonical JSON)
  f: string; // first_seen
  l: string; // last_seen
  n: number; // count
  t: string[]; // targets
  d: AuditDecision; // last_decision
}

// One statement for any number of rows: the rows are one bound JSON parameter (D1 caps parameters at
// 100). On conflict the counts add up, the times widen and the target lists merge (capped).
const UPSERT_SQL =
  "INSERT INTO seen_identities (claims_sha256, issuer, claims, first_seen, last_seen, count, targets, last_decision) " +
  "SELECT json_extract(value, '$.k'), json_extract(value, '$.i'), json_extract(value, '$.c'), json_extract(value, " +
  "'$.f'), " +
  "json_extract(value, '$.l'), json_extract(value, '$.n'), json_extract(value, '$.t'), json_extract(value, '$.d') " +
  "FROM json_each(?) WHERE true " +
  "ON CONFLICT (claims_sha256) DO UPDATE SET count = count + excluded.count, " +
  "first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen), " +
  "last_decision = excluded.last_decision, targets = (SELECT json_group_array(value) FROM (" +
  "SELECT value FROM json_each(seen_identities.targets) UNION SELECT value FROM json_each(excluded.targets) " +
  `LIMIT ${MAX_SEEN_IDENTITY_TARGETS}))`;

export class SeenIdentityRecorder {
  /** Notes not kept because the list was full, and identities not recorded (claims over the cap, failed flushes). */
  dropped = 0;
  failures = 0;
  private notes: Note[] = [];
  private lastFlushMs = Number.NEGATIVE_INFINITY;
  private flushing = false;

  constructor(private readonly deps: Pick<Deps, "now">) {}

  /**
   * Notes a verified identity's request. Returns a flush (for waitUntil) when one is due and none is
   * under way, else undefined: most requests create no promise at all.
   */
  note(
    env: Env,
    identity: VerifiedIdentity,
    target: string | undefined,
    decision: AuditDecision,
  ): Promise<void> | undefined {
    const ms = this.deps.now();
    if (this.notes.length < MAX_SEEN_IDENTITY_NOTES) this.notes.push({ identity, target, decision, ms });
    else this.dropped++;
    if (
      this.flushing ||
      (ms - this.lastFlushMs < SEEN_IDENTITIES_FLUSH_MS && this.notes.length < MAX_SEEN_IDENTITY_NOTES)
    )
      return undefined;
    return this.flush(env);
  }

  /** Writes what was noted since the last flush, in one statement. Never rejects. */
  async flush(env: Env): Promise<void> {
    if (this.flushing || this.notes.length === 0) return;
    this.flushing = true;
    this.lastFlushMs = this.deps.now();
    const notes = this.notes;
    this.notes = [];
    let rows: SeenRow[] = [];
    try {
      rows = await seenRows(notes);
      this.dropped += notes.length - rows.reduce((n, row) => n + row.n, 0);
      if (rows.length > 0)
        await withTimeout(
          env.DB.prepare(UPSERT_SQL).bind(JSON.stringify(rows)).run(),
          SEEN_IDENTITIES_FLUSH_TIMEOUT_MS,
        );
    } catch (err) {
      this.failures += rows.length;
      log("error", "seen_identities_flush_failed", { identities: rows.length, notes: notes.length, error: err });
    } finally {
      this.flushing = false;
    }
  }
}

/** The claims a replay needs, as canonical JSON (sorted keys), or undefined when over the cap. */
export function recordedClaims(claims: NormalizedClaims): string | undefined {
  const kept: Record<string, string | readonly string[]> = {};
  for (const name of Object.keys(claims).sort()) if (!REPLAY_UNRECORDED_CLAIMS.has(name)) kept[name] = claims[name]!;
  const text = JSON.stringify(kept);
  return text.length <= MAX_SEEN_IDENTITY_CLAIMS_LENGTH ? text : undefined;
}

/** Aggregates notes into one row per issuer and claim set, in note order (the last decision wins). */
export async function seenRows(notes: readonly Note[]): Promise<SeenRow[]> {
  const rows = new Map<string, SeenRow>();
  for (const { identity, target, decision, ms } of notes) {
    const claims = recordedClaims(identity.claims);
    if (claims === undefined) continue;
    const key = `${identity.issuer}\n${claims}`;
    const at = new Date(ms).toISOString();
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { k: "", i: identity.issuer, c: claims, f: at, l: at, n: 0, t: [], d: decision }));
    row.n++;
    row.l = at;
    row.d = decision;
    if (target !== undefined && !row.t.includes(target) && row.t.length < MAX_SEEN_IDENTITY_TARGETS) row.t.push(target);
  }
  for (const [key, row] of rows) row.k = await sha256Hex(key);
  return [...rows.values()];
}

/** Deletes rows not seen within the retention, then the least recently seen beyond the row cap. */
export async function pruneSeenIdentities(
  env: Env,
  retentionDays: number,
  nowMs: number,
  maxRows: number,
): Promise<number> {
  const cutoff = new Date(nowMs - retentionDays * 86_400_000).toISOString();
  const [old, surplus] = await env.DB.batch([
    env.DB.prepare("DELETE FROM seen_identities WHERE last_seen < ?").bind(cutoff),
    env.DB.prepare(
      "DELETE FROM seen_identities WHERE claims_sha256 IN (SELECT claims_sha256 FROM seen_identities ORDER BY " +
        "last_seen DESC LIMIT -1 OFFSET ?)",
    ).bind(maxRows),
  ]);
  return (old?.meta.changes ?? 0) + (surplus?.meta.changes ?? 0);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`D1 did not answer within ${ms} ms`)), ms)),
  );
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

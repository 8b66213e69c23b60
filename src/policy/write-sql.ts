// The SQL of the policy write protocol (write-protocol.ts, docs/storage.md "Write protocol"), one copy
// for both storage adapters: the CLI runs it through wrangler, the Worker through its D1 binding. Each
// builder returns single statements (the CLI joins them into one command, the Worker batches them), with
// values as SQL literals (sqlString), so both run exactly the same text.

import { D1_SQL_CHUNK_BYTES } from "../limits";
import { readStoredHeader } from "./load-snapshot";
import { canonicalJson, snapshotBody, STORED_HEADER_START } from "./snapshot-format";
import { MAX_FALLBACK_SNAPSHOTS } from "./active-policy";
import type { PolicySnapshot } from "../types";

/** Every payload chunk key starts so (payloadChunkKey). */
export const CHUNK_KEY_PREFIX = "snapshot:";
/**
 * How long a lease lasts without renewal. A push renews it before each step that changes what is
 * served, so this bounds one step (a wrangler bulk put of 48 chunks takes well under a minute), and
 * how long a dead pusher blocks the next one.
 */
export const PUSH_LEASE_SECONDS = 300;
/**
 * Chunks of versions an attempt started or finished within this many seconds are kept: an isolate
 * elsewhere may still read an `active` or `fallbacks` value KV has not yet propagated (about a minute).
 */
export const CHUNK_GRACE_SECONDS = 600;

export type AttemptOutcome = "started" | "activated" | "busy" | "lost" | "failed";

/** A SQL string literal. Refuses NUL (which SQLite would truncate at); quotes are doubled. */
export function sqlString(value: string): string {
  if (value.includes("\u0000")) throw new Error("refusing a NUL character in SQL text");
  return `'${value.replaceAll("'", "''")}'`;
}

/** Splits ASCII text into pieces of at most `size` characters (snapshot texts are ASCII by construction). */
export function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length; at += size) out.push(text.slice(at, at + size));
  return out.length > 0 ? out : [""];
}

/** The text D1 keeps for a version: its canonical body (the version is its hash). */
export function historyBody(snapshot: PolicySnapshot): string {
  return canonicalJson(snapshotBody(snapshot));
}

/**
 * Statements that store a version (inactive): the body in chunk rows (each below D1's statement size
 * limit), then the row. A re-push of a known version rewrites both (same body; newer push).
 */
export function recordVersionStatements(snapshot: PolicySnapshot, pushedBy: string, pushedAt: string): string[] {
  const body = historyBody(snapshot);
  if (!/^[\x20-\x7e]*$/.test(body)) throw new Error("snapshot text must be printable ASCII");
  const parts = chunks(body, D1_SQL_CHUNK_BYTES);
  const version = sqlString(snapshot.version);
  return [
    ...parts.map(
      (data, seq) =>
        `INSERT INTO policy_history_chunks (version, seq, data) VALUES ` +
        `(${version}, ${seq}, ${sqlString(data)}) ON CONFLICT (version, seq) DO UPDATE SET data = excluded.data;`,
    ),
    `DELETE FROM policy_history_chunks WHERE version = ${version} AND seq >= ${parts.length};`,
    `INSERT INTO policy_versions (version, source_digest, snapshot, pushed_by, pushed_at, active, snapshot_chunks) ` +
      `VALUES (${version}, ${sqlString(snapshot.source_digest)}, '', ${sqlString(pushedBy)}, ${sqlString(pushedAt)}, 0, ${parts.length}) ` +
      `ON CONFLICT (version) DO UPDATE SET source_digest = excluded.source_digest, snapshot = '', snapshot_chunks = ` +
      `excluded.snapshot_chunks, pushed_by = excluded.pushed_by, pushed_at = excluded.pushed_at;`,
  ];
}

/** Reads back what recordVersionStatements stored: chunk count and bytes, and the chunk count the row names. */
export function storedVersionCheckSql(version: string): string {
  return (
    `SELECT count(c.seq) AS n, coalesce(sum(length(c.data)), 0) AS bytes, v.snapshot_chunks AS chunks FROM ` +
    `policy_versions v ` +
    `LEFT JOIN policy_history_chunks c ON c.version = v.version WHERE v.version = ${sqlString(version)} GROUP BY ` +
    `v.version`
  );
}

/** The condition every write under the lease carries: this attempt holds it, unexpired. */
function leaseHeld(attempt: string): string {
  return (
    `EXISTS (SELECT 1 FROM policy_push_lease WHERE id = 1 AND holder = ${sqlString(attempt)} AND expires_at > ` +
    `unixepoch())`
  );
}

export function logAttemptSql(attempt: string, action: "push" | "rollback", version: string, by: string): string {
  return (
    `INSERT INTO policy_pushes (attempt, action, version, pushed_by, started_at, outcome) VALUES ` +
    `(${sqlString(attempt)}, ${sqlString(action)}, ${sqlString(version)}, ${sqlString(by)}, unixepoch(), 'started');`
  );
}

/** Takes the lease if no unexpired one is held (one conditional upsert, so atomic), then who holds it. */
export function takeLeaseStatements(attempt: string, by: string): [string, string] {
  return [
    `INSERT INTO policy_push_lease (id, holder, held_by, expires_at) VALUES (1, ` +
      `${sqlString(attempt)}, ${sqlString(by)}, unixepoch() + ${PUSH_LEASE_SECONDS}) ` +
      `ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, held_by = excluded.held_by, expires_at = ` +
      `excluded.expires_at WHERE policy_push_lease.expires_at <= unixepoch();`,
    `SELECT holder, held_by FROM policy_push_lease WHERE id = 1`,
  ];
}

export function finishAttemptSql(
  attempt: string,
  outcome: Exclude<AttemptOutcome, "started" | "activated">,
  detail: string,
): string {
  return (
    `UPDATE policy_pushes SET outcome = ${sqlString(outcome)}, finished_at = unixepoch(), detail = ` +
    `${sqlString(detail.slice(0, 500))} WHERE attempt = ${sqlString(attempt)} AND outcome = 'started'`
  );
}

export function renewLeaseSql(attempt: string): string {
  return (
    `UPDATE policy_push_lease SET expires_at = unixepoch() + ${PUSH_LEASE_SECONDS} WHERE id = 1 AND holder = ` +
    `${sqlString(attempt)} AND expires_at > unixepoch() RETURNING holder`
  );
}

export function releaseLeaseSql(attempt: string): string {
  return `DELETE FROM policy_push_lease WHERE id = 1 AND holder = ${sqlString(attempt)}`;
}

/**
 * The version D1 flags active, and the headers of the versions activated before it (other than `version`), newest
 * first.
 */
export function fallbackStateStatements(version: string): [string, string] {
  return [
    `SELECT version, stored_header, 1 AS active FROM policy_versions WHERE active = 1;`,
    `SELECT v.version, v.stored_header, 0 AS active FROM policy_pushes p JOIN policy_versions v ON v.version = ` +
      `p.version ` +
      `WHERE p.outcome = 'activated' AND p.version != ${sqlString(version)} AND v.stored_header IS NOT NULL GROUP ` +
      `BY p.version ORDER BY max(p.activation) DESC LIMIT ${MAX_FALLBACK_SNAPSHOTS}`,
  ];
}

export interface FallbackRow {
  version: string;
  stored_header: string | null;
  active: number;
}

/**
 * The rows of fallbackStateStatements as the protocol needs them: the version active until now (D1's
 * flag) and the headers of the versions activated before, newest first, other than `version`: where an
 * isolate that cannot load `active` goes (at most MAX_FALLBACK_SNAPSHOTS). A version active before the
 * stored header was kept in D1 (pushed by an older CLI) is taken from KV `active` (readActive).
 */
export async function fallbackStateOf(
  rows: readonly FallbackRow[],
  version: string,
  readActive: () => Promise<string | undefined>,
): Promise<{ active: string | undefined; headers: string[] }> {
  const active = rows.find((row) => row.active === 1);
  const headers: string[] = [];
  if (active && active.version !== version) {
    const header = active.stored_header ?? (await readActive());
    if (header?.startsWith(STORED_HEADER_START) && readStoredHeader(header).version === active.version)
      headers.push(header);
  }
  for (const row of rows) if (row.active === 0 && row.version !== active?.version) headers.push(row.stored_header!);
  return { active: active?.version, headers: headers.slice(0, MAX_FALLBACK_SNAPSHOTS) };
}

/**
 * The compare-and-swap of step 3: flags `version` active, stores its header and marks the attempt
 * activated, each only while `attempt` holds the lease. The last statement returns the attempt's row
 * when it was marked (so, when the others applied too).
 */
export function activateStatements(
  version: string,
  headerText: string,
  attempt: string,
  replaced: string | undefined,
): string[] {
  const held = leaseHeld(attempt);
  const v = sqlString(version);
  return [
    `UPDATE policy_versions SET stored_header = ${sqlString(headerText)} WHERE version = ${v} AND ${held};`,
    `UPDATE policy_versions SET active = CASE WHEN version = ${v} THEN 1 ELSE 0 END WHERE ${held};`,
    `UPDATE policy_pushes SET outcome = 'activated', finished_at = unixepoch(), activation = (SELECT ` +
      `coalesce(max(activation), 0) + 1 FROM policy_pushes), replaced = ` +
      `${replaced === undefined ? "NULL" : sqlString(replaced)} WHERE attempt = ` +
      `${sqlString(attempt)} AND ${held} RETURNING attempt;`,
  ];
}

/**
 * The versions whose chunks must stay: the versions activated most recently (what `fallbacks` names)
 * and those of any attempt started or finished within CHUNK_GRACE_SECONDS (an `active` or `fallbacks`
 * value still propagating, or a pusher still writing).
 */
export const KEPT_VERSIONS_SQL =
  `SELECT version AS kept FROM (SELECT version FROM policy_pushes WHERE outcome = 'activated' GROUP BY version ` +
  `ORDER BY max(activation) DESC LIMIT ${MAX_FALLBACK_SNAPSHOTS + 1}) ` +
  `UNION SELECT version FROM policy_pushes WHERE max(started_at, coalesce(finished_at, 0)) > unixepoch() - ` +
  `${CHUNK_GRACE_SECONDS} ` +
  `UNION SELECT replaced FROM policy_pushes WHERE replaced IS NOT NULL AND finished_at > unixepoch() - ` +
  `${CHUNK_GRACE_SECONDS};`;

/** The chunk keys KV holds for versions other than `keep` (what a push deletes after switching `active`). */
export function unusedChunkKeys(listed: readonly string[], keep: readonly string[]): string[] {
  const kept = new Set(keep);
  return listed.filter(
    (key) => key.startsWith(CHUNK_KEY_PREFIX) && !kept.has(key.slice(CHUNK_KEY_PREFIX.length).split(":")[0]!),
  );
}

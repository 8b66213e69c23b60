// What a remote plan reads through the admin API, straight from the D1 binding: the policy history,
// a version's snapshot text, and the identities gatepass has seen (a page at a time). The same queries
// the CLI runs through wrangler (cli/policy/store.ts), with bound parameters.

import type { Env } from "../config";
import { historySnapshotText } from "../policy/history-text";

export interface HistoryEntry {
  version: string;
  source_digest: string;
  pushed_by: string;
  pushed_at: string;
  active: number;
}

export async function policyHistory(env: Env, limit: number): Promise<HistoryEntry[]> {
  const { results } = await env.DB.prepare(
    "SELECT version, source_digest, pushed_by, pushed_at, active FROM policy_versions ORDER BY pushed_at DESC, " +
      "version LIMIT ?",
  )
    .bind(limit)
    .all<HistoryEntry>();
  return results;
}

export async function activeVersion(env: Env): Promise<string | undefined> {
  const row = await env.DB.prepare("SELECT version FROM policy_versions WHERE active = 1 LIMIT 1").first<{
    version: string;
  }>();
  return row?.version ?? undefined;
}

/** Chunk rows read per query, so each answer stays a few MB. */
const CHUNK_PAGE = 32;

/** The format 1 snapshot text of a stored version, or undefined when there is no such version. */
export async function versionText(env: Env, version: string): Promise<string | undefined> {
  const row = await env.DB.prepare(
    "SELECT version, source_digest, pushed_at, snapshot, snapshot_chunks FROM policy_versions WHERE version = ?",
  )
    .bind(version)
    .first<{ version: string; source_digest: string; pushed_at: string; snapshot: string; snapshot_chunks: number }>();
  if (!row) return undefined;
  if (row.snapshot_chunks === 0) return historySnapshotText(row, undefined);
  const parts: string[] = [];
  for (let seq = 0; seq < row.snapshot_chunks; seq += CHUNK_PAGE) {
    const { results } = await env.DB.prepare(
      "SELECT seq, data FROM policy_history_chunks WHERE version = ? AND seq >= ? AND seq < ? ORDER BY seq",
    )
      .bind(version, seq, seq + CHUNK_PAGE)
      .all<{ seq: number; data: string }>();
    results.forEach((chunk, i) => {
      if (chunk.seq !== seq + i) throw new Error(`the stored snapshot of ${version} is missing chunk ${seq + i}`);
      parts.push(chunk.data);
    });
  }
  if (parts.length !== row.snapshot_chunks)
    throw new Error(`the stored snapshot of ${version} has ${parts.length} of ${row.snapshot_chunks} chunks`);
  return historySnapshotText(row, parts.join(""));
}

export interface SeenIdentityRow {
  claims_sha256: string;
  issuer: string;
  claims: string;
  count: number;
  first_seen: string;
  last_seen: string;
}

/** One page of seen identities last seen since `since`, in key order after `after` (keyset paging). */
export async function seenIdentitiesPage(
  env: Env,
  since: string,
  after: string,
  limit: number,
): Promise<SeenIdentityRow[]> {
  const { results } = await env.DB.prepare(
    "SELECT claims_sha256, issuer, claims, count, first_seen, last_seen FROM seen_identities WHERE last_seen >= ? " +
      "AND claims_sha256 > ? ORDER BY claims_sha256 LIMIT ?",
  )
    .bind(since, after, limit)
    .all<SeenIdentityRow>();
  return results;
}

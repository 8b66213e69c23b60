// Writing and reading policy snapshots through wrangler: KV POLICIES (what the Worker serves) and D1
// policy_versions + policy_history_chunks (history, who/when, the snapshot for rollback).
//
// KV: the stored snapshot's payload goes to content-addressed chunk keys first, then its header to
// `active` (one small put), so a reader sees the old snapshot or the new one, never half of one.
// D1: the canonical body (which the version is the hash of) in chunk rows, then the version's row.
//
// Write order keeps KV from ever pointing at a version D1 does not know:
//   1. D1: the body's chunks, then the version's row, not active (checked by reading them back);
//   2. KV: the payload chunks, then `active`;
//   3. D1: flag that row as the active one;
//   4. KV: delete the chunks of versions other than the new one and the one it replaced (with 3).
// A failure in 1 or 2 leaves the serving snapshot untouched; a failure in 3 leaves KV serving a
// version whose row exists, with stale active flags that the next push or rollback repairs; a failure
// in 4 leaves unused chunks that the next push deletes.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { D1_SQL_CHUNK_BYTES } from "../../src/limits";
import { readStoredHeader } from "../../src/policy/compile";
import { canonicalJson, payloadChunks, snapshotBody, STORED_HEADER_START, type StoredSnapshot } from "../../src/policy/snapshot";
import { ACTIVE_SNAPSHOT_KEY, payloadChunkKey } from "../../src/policy/store";
import { isPlainObject } from "../../src/encoding";
import type { NormalizedClaims, PolicySnapshot } from "../../src/types";
import type { SeenIdentity } from "./policy-replay";
import type { StorageTarget } from "../remote-d1";
import { wrangler } from "../wrangler";

/** Every payload chunk key starts so (payloadChunkKey). */
const CHUNK_KEY_PREFIX = "snapshot:";
/** seen_identities rows per D1 query of a plan's replay (each about 1 KB). */
const SEEN_IDENTITIES_PAGE = 5000;
/** wrangler processes reading chunks at once. */
const READ_CONCURRENCY = 4;

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
 * SQL that stores a version (inactive): the body in chunk rows (each statement below D1's statement
 * size limit), then the row. A re-push of a known version rewrites both (same body; newer push).
 */
export function recordVersionSql(snapshot: PolicySnapshot, pushedBy: string, pushedAt: string): string {
  const body = historyBody(snapshot);
  if (!/^[\x20-\x7e]*$/.test(body)) throw new Error("snapshot text must be printable ASCII");
  const parts = chunks(body, D1_SQL_CHUNK_BYTES);
  const version = sqlString(snapshot.version);
  const statements = [
    ...parts.map(
      (data, seq) =>
        `INSERT INTO policy_history_chunks (version, seq, data) VALUES (${version}, ${seq}, ${sqlString(data)}) ON CONFLICT (version, seq) DO UPDATE SET data = excluded.data;`,
    ),
    `DELETE FROM policy_history_chunks WHERE version = ${version} AND seq >= ${parts.length};`,
    `INSERT INTO policy_versions (version, source_digest, snapshot, pushed_by, pushed_at, active, snapshot_chunks) VALUES (${version}, ${sqlString(snapshot.source_digest)}, '', ${sqlString(pushedBy)}, ${sqlString(pushedAt)}, 0, ${parts.length}) ` +
      `ON CONFLICT (version) DO UPDATE SET source_digest = excluded.source_digest, snapshot = '', snapshot_chunks = excluded.snapshot_chunks, pushed_by = excluded.pushed_by, pushed_at = excluded.pushed_at;`,
  ];
  return `${statements.join("\n")}\n`;
}

export function activateSql(version: string): string {
  return `UPDATE policy_versions SET active = CASE WHEN version = ${sqlString(version)} THEN 1 ELSE 0 END;\n`;
}

/**
 * The format 1 snapshot a history row stands for: rows written before migration 0002 hold it whole in
 * `snapshot`; later rows hold the body in chunks, and the push time is the snapshot's created_at.
 */
export function historySnapshotText(row: { version: string; source_digest: string; pushed_at: string; snapshot: string }, body: string | undefined): string {
  if (body === undefined) return row.snapshot;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Error(`the stored body of ${row.version} is not JSON`);
  }
  return canonicalJson({ ...(parsed as object), version: row.version, source_digest: row.source_digest, created_at: row.pushed_at });
}

/** The chunk keys KV holds for versions other than `keep` (what a push deletes after switching `active`). */
export function unusedChunkKeys(listed: readonly string[], keep: readonly string[]): string[] {
  const kept = new Set(keep);
  return listed.filter((key) => key.startsWith(CHUNK_KEY_PREFIX) && !kept.has(key.slice(CHUNK_KEY_PREFIX.length).split(":")[0]!));
}

/** A seen_identities row as a replay reads it; a row whose claims are not a JSON object is refused. */
export function seenIdentityOf(row: { issuer: string; claims: string; count: number; first_seen: string; last_seen: string }): SeenIdentity {
  const claims = JSON.parse(row.claims) as unknown;
  if (!isPlainObject(claims)) throw new Error(`a seen_identities row of issuer ${row.issuer} holds claims that are not a JSON object`);
  return { issuer: row.issuer, claims: claims as NormalizedClaims, count: row.count, firstSeen: row.first_seen, lastSeen: row.last_seen };
}

export interface HistoryRow {
  version: string;
  source_digest: string;
  pushed_by: string;
  pushed_at: string;
  active: number;
}

export class PolicyStorage {
  constructor(private readonly storage: StorageTarget) {}

  /** Stores the version (inactive) and checks it is whole; returns the version active until now, if any. */
  async recordVersion(snapshot: PolicySnapshot, pushedBy: string, pushedAt: string): Promise<string | undefined> {
    await this.executeFile(recordVersionSql(snapshot, pushedBy, pushedAt));
    const version = sqlString(snapshot.version);
    const [stored] = await this.query<{ n: number; bytes: number; chunks: number; active: string | null }>(
      `SELECT count(c.seq) AS n, coalesce(sum(length(c.data)), 0) AS bytes, v.snapshot_chunks AS chunks, ` +
        `(SELECT version FROM policy_versions WHERE active = 1 LIMIT 1) AS active FROM policy_versions v ` +
        `LEFT JOIN policy_history_chunks c ON c.version = v.version WHERE v.version = ${version} GROUP BY v.version`,
    );
    const body = historyBody(snapshot);
    if (!stored || stored.n !== stored.chunks || stored.bytes !== body.length) throw new Error("D1 did not store the whole snapshot; nothing was activated");
    return stored.active ?? undefined;
  }

  /** Writes the payload chunks, then points `active` at them. */
  async putActive(stored: StoredSnapshot): Promise<void> {
    const pairs = payloadChunks(stored.payload).map((value, i) => ({ key: payloadChunkKey(stored.header, i), value }));
    await this.withTempFile(JSON.stringify(pairs), (file) => wrangler(["kv", "bulk", "put", file, "--binding", "POLICIES", ...this.storage.kvFlags()]));
    await this.withTempFile(stored.headerText, (file) =>
      wrangler(["kv", "key", "put", ACTIVE_SNAPSHOT_KEY, "--binding", "POLICIES", "--path", file, ...this.storage.kvFlags()]),
    );
  }

  /** The snapshot KV serves now as loadSnapshot reads it (header, newline, payload), or undefined. */
  async readActive(): Promise<string | undefined> {
    const value = (await wrangler(["kv", "key", "get", ACTIVE_SNAPSHOT_KEY, "--binding", "POLICIES", "--text", ...this.storage.kvFlags()])).replace(/\n$/, "");
    // wrangler answers a missing key on stdout with exit 0; a snapshot or header is a JSON object.
    if (!value.startsWith("{")) return undefined;
    if (!value.startsWith(STORED_HEADER_START)) return value;
    const header = readStoredHeader(value);
    const keys = Array.from({ length: header.chunks }, (_, i) => payloadChunkKey(header, i));
    const parts: string[] = new Array(keys.length);
    for (let at = 0; at < keys.length; at += READ_CONCURRENCY) {
      await Promise.all(
        keys.slice(at, at + READ_CONCURRENCY).map(async (key, j) => {
          // A payload holds no newline (canonical JSON): one at the end is wrangler's.
          parts[at + j] = (await wrangler(["kv", "key", "get", key, "--binding", "POLICIES", "--text", ...this.storage.kvFlags()])).replace(/\n$/, "");
        }),
      );
    }
    return `${value}\n${parts.join("")}`;
  }

  /** Deletes the payload chunks of versions other than `keep`; returns how many. */
  async deleteUnusedChunks(keep: readonly string[]): Promise<number> {
    const listed = JSON.parse(await wrangler(["kv", "key", "list", "--binding", "POLICIES", "--prefix", CHUNK_KEY_PREFIX, ...this.storage.kvFlags()])) as { name: string }[];
    const unused = unusedChunkKeys(listed.map((entry) => entry.name), keep);
    if (unused.length > 0) {
      await this.withTempFile(JSON.stringify(unused), (file) => wrangler(["kv", "bulk", "delete", file, "--force", "--binding", "POLICIES", ...this.storage.kvFlags()]));
    }
    return unused.length;
  }

  async activate(version: string): Promise<void> {
    await this.executeFile(activateSql(version));
  }

  async history(limit: number): Promise<HistoryRow[]> {
    return this.query<HistoryRow>(
      `SELECT version, source_digest, pushed_by, pushed_at, active FROM policy_versions ORDER BY pushed_at DESC, version LIMIT ${Math.trunc(limit)}`,
    );
  }

  /** Versions that start with `prefix` (at most 2; substr, not LIKE: D1 caps LIKE patterns at 50 bytes), and the active one. */
  async findVersions(prefix: string): Promise<{ matches: string[]; active: string | undefined }> {
    if (!/^[0-9a-f]{1,64}$/.test(prefix)) throw new Error("a version is hexadecimal");
    const rows = await this.query<{ version: string; active: number; hit: number }>(
      `SELECT version, active, substr(version, 1, ${prefix.length}) = ${sqlString(prefix)} AS hit FROM policy_versions WHERE hit OR active = 1 ORDER BY hit DESC LIMIT 3`,
    );
    return { matches: rows.filter((row) => row.hit).slice(0, 2).map((row) => row.version), active: rows.find((row) => row.active === 1)?.version };
  }

  /** The version D1 marks active, if any. */
  async activeVersion(): Promise<string | undefined> {
    const [row] = await this.query<{ version: string }>("SELECT version FROM policy_versions WHERE active = 1 LIMIT 1");
    return row?.version;
  }

  /**
   * The identities the Worker recorded as seen since `since` (ISO 8601), for a plan's replay: read in
   * pages in key order, so each answer stays a few MB however many there are.
   */
  async seenIdentities(since: string): Promise<SeenIdentity[]> {
    const identities: SeenIdentity[] = [];
    let after = "";
    for (;;) {
      const rows = await this.query<{ claims_sha256: string; issuer: string; claims: string; count: number; first_seen: string; last_seen: string }>(
        `SELECT claims_sha256, issuer, claims, count, first_seen, last_seen FROM seen_identities ` +
          `WHERE last_seen >= ${sqlString(since)} AND claims_sha256 > ${sqlString(after)} ORDER BY claims_sha256 LIMIT ${SEEN_IDENTITIES_PAGE}`,
      );
      for (const row of rows) identities.push(seenIdentityOf(row));
      if (rows.length < SEEN_IDENTITIES_PAGE) return identities;
      after = rows.at(-1)!.claims_sha256;
    }
  }

  /** The format 1 snapshot text of a stored version (for rollback). */
  async readVersion(version: string): Promise<string> {
    const [row] = await this.query<{ version: string; source_digest: string; pushed_at: string; snapshot: string; snapshot_chunks: number }>(
      `SELECT version, source_digest, pushed_at, snapshot, snapshot_chunks FROM policy_versions WHERE version = ${sqlString(version)}`,
    );
    if (!row) throw new Error(`no pushed policy version ${version}`);
    if (row.snapshot_chunks === 0) return historySnapshotText(row, undefined);
    // A page of chunk rows per query keeps each answer a few MB.
    const parts: string[] = [];
    const page = 32;
    for (let seq = 0; seq < row.snapshot_chunks; seq += page) {
      const rows = await this.query<{ seq: number; data: string }>(
        `SELECT seq, data FROM policy_history_chunks WHERE version = ${sqlString(version)} AND seq >= ${seq} AND seq < ${seq + page} ORDER BY seq`,
      );
      rows.forEach((chunk, i) => {
        if (chunk.seq !== seq + i) throw new Error(`the stored snapshot of ${version} is missing chunk ${seq + i}`);
        parts.push(chunk.data);
      });
    }
    if (parts.length !== row.snapshot_chunks) throw new Error(`the stored snapshot of ${version} has ${parts.length} of ${row.snapshot_chunks} chunks`);
    return historySnapshotText(row, parts.join(""));
  }

  private async query<T>(sql: string): Promise<T[]> {
    const out = await wrangler(["d1", "execute", "DB", "--json", "--command", sql, ...(await this.storage.d1Flags())]);
    const parsed = JSON.parse(out) as { results?: T[] }[];
    return parsed.flatMap((r) => r.results ?? []);
  }

  private async executeFile(sql: string): Promise<void> {
    const flags = await this.storage.d1Flags();
    await this.withTempFile(sql, (file) => wrangler(["d1", "execute", "DB", "--file", file, "--yes", ...flags]));
  }

  private async withTempFile<T>(content: string, use: (file: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(tmpdir(), "gatepass-policies-"));
    try {
      const file = path.join(dir, "data");
      await writeFile(file, content, { mode: 0o600 });
      return await use(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

// Writing and reading policy snapshots through wrangler: KV POLICIES key `active` (what the Worker
// serves) and D1 policy_versions (history, who/when, the snapshot text for rollback).
//
// Write order keeps KV from ever pointing at a version D1 does not know:
//   1. D1: upsert the version's row, not active (checked by reading its length back);
//   2. KV: put the snapshot under `active`;
//   3. D1: flag that row as the active one.
// A failure in 1 or 2 leaves the serving snapshot untouched; a failure in 3 leaves KV serving a
// version whose row exists, with stale active flags that the next push or rollback repairs.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { D1_SQL_CHUNK_BYTES } from "../../src/limits";
import { ACTIVE_SNAPSHOT_KEY } from "../../src/policy/store";
import type { PolicySnapshot } from "../../src/types";
import type { StorageTarget } from "../remote-d1";
import { wrangler } from "../wrangler";

/** A SQL string literal. Refuses NUL (which SQLite would truncate at); quotes are doubled. */
export function sqlString(value: string): string {
  if (value.includes("\u0000")) throw new Error("refusing a NUL character in SQL text");
  return `'${value.replaceAll("'", "''")}'`;
}

/** Splits ASCII text into pieces of at most `size` characters (the snapshot text is ASCII by construction). */
export function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length; at += size) out.push(text.slice(at, at + size));
  return out.length > 0 ? out : [""];
}

/** SQL that stores a snapshot row (inactive), in statements each below D1's statement size limit. */
export function recordVersionSql(snapshot: PolicySnapshot, text: string, pushedBy: string, pushedAt: string): string {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error("snapshot text must be printable ASCII");
  const [first, ...rest] = chunks(text, D1_SQL_CHUNK_BYTES);
  const version = sqlString(snapshot.version);
  // Re-pushing a known version rewrites its row (same content; newer push time and text).
  const statements = [
    `INSERT INTO policy_versions (version, source_digest, snapshot, pushed_by, pushed_at, active) VALUES (${version}, ${sqlString(snapshot.source_digest)}, ${sqlString(first!)}, ${sqlString(pushedBy)}, ${sqlString(pushedAt)}, 0) ` +
      `ON CONFLICT (version) DO UPDATE SET source_digest = excluded.source_digest, snapshot = excluded.snapshot, pushed_by = excluded.pushed_by, pushed_at = excluded.pushed_at;`,
    ...rest.map((chunk) => `UPDATE policy_versions SET snapshot = snapshot || ${sqlString(chunk)} WHERE version = ${version};`),
  ];
  return `${statements.join("\n")}\n`;
}

export function activateSql(version: string): string {
  return `UPDATE policy_versions SET active = CASE WHEN version = ${sqlString(version)} THEN 1 ELSE 0 END;\n`;
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

  async recordVersion(snapshot: PolicySnapshot, text: string, pushedBy: string, pushedAt: string): Promise<void> {
    await this.executeFile(recordVersionSql(snapshot, text, pushedBy, pushedAt));
    const rows = await this.query<{ n: number }>(`SELECT length(snapshot) AS n FROM policy_versions WHERE version = ${sqlString(snapshot.version)}`);
    if (rows[0]?.n !== text.length) throw new Error("D1 did not store the whole snapshot; nothing was activated");
  }

  async putActive(text: string): Promise<void> {
    await this.withTempFile(text, (file) =>
      wrangler(["kv", "key", "put", ACTIVE_SNAPSHOT_KEY, "--binding", "POLICIES", "--path", file, ...this.storage.kvFlags()]),
    );
  }

  /** The snapshot text KV serves now, or undefined when no policy has been pushed. */
  async readActive(): Promise<string | undefined> {
    const out = (await wrangler(["kv", "key", "get", ACTIVE_SNAPSHOT_KEY, "--binding", "POLICIES", "--text", ...this.storage.kvFlags()])).replace(/\n$/, "");
    // wrangler answers a missing key on stdout with exit 0; a snapshot is a JSON object.
    return out.startsWith("{") ? out : undefined;
  }

  async activate(version: string): Promise<void> {
    await this.executeFile(activateSql(version));
  }

  async history(limit: number): Promise<HistoryRow[]> {
    return this.query<HistoryRow>(
      `SELECT version, source_digest, pushed_by, pushed_at, active FROM policy_versions ORDER BY pushed_at DESC, version LIMIT ${Math.trunc(limit)}`,
    );
  }

  /** Rows whose version starts with `prefix` (substr, not LIKE: D1 caps LIKE patterns at 50 bytes). */
  async findVersion(prefix: string): Promise<{ version: string; snapshot: string }[]> {
    if (!/^[0-9a-f]{1,64}$/.test(prefix)) throw new Error("a version is hexadecimal");
    return this.query(`SELECT version, snapshot FROM policy_versions WHERE substr(version, 1, ${prefix.length}) = ${sqlString(prefix)} LIMIT 2`);
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

// Reading policy history and state through wrangler: D1 policy_versions, policy_history_chunks and
// policy_pushes (what was pushed, by whom, what became of each attempt), the identities gatepass has
// seen (for plan's replay), and KV `active` as the Worker loads it. PolicyStorage
// (policy-storage.ts) adds the write protocol on top.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { isPlainObject } from "../../src/encoding";
import { ACTIVE_SNAPSHOT_KEY, payloadChunkKey } from "../../src/policy/active-policy";
import { historySnapshotText } from "../../src/policy/history-text";
import { readStoredHeader } from "../../src/policy/load-snapshot";
import { STORED_HEADER_START } from "../../src/policy/snapshot-format";
import { sqlString, type AttemptOutcome } from "../../src/policy/write-sql";
import type { NormalizedClaims } from "../../src/types";
import type { StorageTarget } from "../remote-d1";
import { wrangler } from "../wrangler";
import type { SeenIdentity } from "./policy-replay";

/** seen_identities rows per D1 query of a plan's replay (each about 1 KB). */
const SEEN_IDENTITIES_PAGE = 5000;

/** wrangler processes reading chunks at once. */
const READ_CONCURRENCY = 4;

export function seenIdentityOf(row: {
  issuer: string;
  claims: string;
  count: number;
  first_seen: string;
  last_seen: string;
}): SeenIdentity {
  const claims = JSON.parse(row.claims) as unknown;
  if (!isPlainObject(claims))
    throw new Error(`a seen_identities row of issuer ${row.issuer} holds claims that are not a JSON object`);
  return {
    issuer: row.issuer,
    claims: claims as NormalizedClaims,
    count: row.count,
    firstSeen: row.first_seen,
    lastSeen: row.last_seen,
  };
}

export interface AttemptRow {
  seq: number;
  attempt: string;
  action: "push" | "rollback";
  version: string;
  pushed_by: string;
  outcome: AttemptOutcome;
  activation: number | null;
  replaced: string | null;
  detail: string | null;
}

export interface HistoryRow {
  version: string;
  source_digest: string;
  pushed_by: string;
  pushed_at: string;
  active: number;
}

export class PolicyHistory {
  constructor(protected readonly storage: StorageTarget) {}

  /** KV `active` as it is (a header, a whole format 1 snapshot, or undefined), without its chunks. */
  protected async readActiveValue(): Promise<string | undefined> {
    const value = (
      await wrangler([
        "kv",
        "key",
        "get",
        ACTIVE_SNAPSHOT_KEY,
        "--binding",
        "POLICIES",
        "--text",
        ...this.storage.kvFlags(),
      ])
    ).replace(/\n$/, "");
    // wrangler answers a missing key on stdout with exit 0; a snapshot or header is a JSON object.
    return value.startsWith("{") ? value : undefined;
  }

  /** The newest attempts, newest first. */
  async attempts(limit: number): Promise<AttemptRow[]> {
    return this.query<AttemptRow>(
      `SELECT seq, attempt, action, version, pushed_by, outcome, activation, replaced, detail FROM policy_pushes ` +
        `ORDER BY seq DESC LIMIT ${Math.trunc(limit)}`,
    );
  }

  /** The snapshot KV serves now as loadSnapshot reads it (header, newline, payload), or undefined. */
  async readActive(): Promise<string | undefined> {
    const value = await this.readActiveValue();
    if (value === undefined || !value.startsWith(STORED_HEADER_START)) return value;
    const header = readStoredHeader(value);
    const keys = Array.from({ length: header.chunks }, (_, i) => payloadChunkKey(header, i));
    const parts: string[] = new Array(keys.length);
    for (let at = 0; at < keys.length; at += READ_CONCURRENCY) {
      await Promise.all(
        keys.slice(at, at + READ_CONCURRENCY).map(async (key, j) => {
          // A payload holds no newline (canonical JSON): one at the end is wrangler's.
          parts[at + j] = (
            await wrangler(["kv", "key", "get", key, "--binding", "POLICIES", "--text", ...this.storage.kvFlags()])
          ).replace(/\n$/, "");
        }),
      );
    }
    return `${value}\n${parts.join("")}`;
  }

  async history(limit: number): Promise<HistoryRow[]> {
    return this.query<HistoryRow>(
      `SELECT version, source_digest, pushed_by, pushed_at, active FROM policy_versions ORDER BY pushed_at DESC, ` +
        `version LIMIT ${Math.trunc(limit)}`,
    );
  }

  /**
   * Versions that start with `prefix` (at most 2; substr, not LIKE: D1 caps LIKE patterns at 50 bytes), and the active
   * one.
   */
  async findVersions(prefix: string): Promise<{ matches: string[]; active: string | undefined }> {
    if (!/^[0-9a-f]{1,64}$/.test(prefix)) throw new Error("a version is hexadecimal");
    const rows = await this.query<{ version: string; active: number; hit: number }>(
      `SELECT version, active, substr(version, 1, ${prefix.length}) = ${sqlString(prefix)} AS hit FROM ` +
        `policy_versions WHERE hit OR active = 1 ORDER BY hit DESC LIMIT 3`,
    );
    return {
      matches: rows
        .filter((row) => row.hit)
        .slice(0, 2)
        .map((row) => row.version),
      active: rows.find((row) => row.active === 1)?.version,
    };
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
      const rows = await this.query<{
        claims_sha256: string;
        issuer: string;
        claims: string;
        count: number;
        first_seen: string;
        last_seen: string;
      }>(
        `SELECT claims_sha256, issuer, claims, count, first_seen, last_seen FROM seen_identities ` +
          `WHERE last_seen >= ${sqlString(since)} AND claims_sha256 > ${sqlString(after)} ORDER BY claims_sha256 ` +
          `LIMIT ${SEEN_IDENTITIES_PAGE}`,
      );
      for (const row of rows) identities.push(seenIdentityOf(row));
      if (rows.length < SEEN_IDENTITIES_PAGE) return identities;
      after = rows.at(-1)!.claims_sha256;
    }
  }

  /** The format 1 snapshot text of a stored version (for rollback). */
  async readVersion(version: string): Promise<string> {
    const [row] = await this.query<{
      version: string;
      source_digest: string;
      pushed_at: string;
      snapshot: string;
      snapshot_chunks: number;
    }>(
      `SELECT version, source_digest, pushed_at, snapshot, snapshot_chunks FROM policy_versions WHERE version = ` +
        `${sqlString(version)}`,
    );
    if (!row) throw new Error(`no pushed policy version ${version}`);
    if (row.snapshot_chunks === 0) return historySnapshotText(row, undefined);
    // A page of chunk rows per query keeps each answer a few MB.
    const parts: string[] = [];
    const page = 32;
    for (let seq = 0; seq < row.snapshot_chunks; seq += page) {
      const rows = await this.query<{ seq: number; data: string }>(
        `SELECT seq, data FROM policy_history_chunks WHERE version = ${sqlString(version)} AND seq >= ` +
          `${seq} AND seq < ${seq + page} ORDER BY seq`,
      );
      rows.forEach((chunk, i) => {
        if (chunk.seq !== seq + i) throw new Error(`the stored snapshot of ${version} is missing chunk ${seq + i}`);
        parts.push(chunk.data);
      });
    }
    if (parts.length !== row.snapshot_chunks)
      throw new Error(`the stored snapshot of ${version} has ${parts.length} of ${row.snapshot_chunks} chunks`);
    return historySnapshotText(row, parts.join(""));
  }

  protected async query<T>(sql: string): Promise<T[]> {
    const out = await wrangler(["d1", "execute", "DB", "--json", "--command", sql, ...(await this.storage.d1Flags())]);
    const parsed = JSON.parse(out) as { results?: T[] }[];
    return parsed.flatMap((r) => r.results ?? []);
  }

  protected async executeFile(sql: string): Promise<void> {
    const flags = await this.storage.d1Flags();
    await this.withTempFile(sql, (file) => wrangler(["d1", "execute", "DB", "--file", file, "--yes", ...flags]));
  }

  protected async withTempFile<T>(content: string, use: (file: string) => Promise<T>): Promise<T> {
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

// Writing and reading policy snapshots through wrangler: KV POLICIES (what the Worker serves) and D1
// policy_versions + policy_history_chunks (history, who/when, the snapshot for rollback).
//
// KV: the stored snapshot's payload goes to content-addressed chunk keys first, then its header to
// `active` (one small put), so a reader sees the old snapshot or the new one, never half of one.
// D1: the canonical body (which the version is the hash of) in chunk rows, then the version's row.
//
// Write protocol (docs/storage.md, "Write protocol"). KV has no compare-and-swap, so D1 (one SQLite
// database) serialises pushes and rollbacks:
//   0. D1: log the attempt (policy_pushes, outcome `started`), then take the lease: one conditional
//      upsert of the single policy_push_lease row that succeeds only if no unexpired lease is held
//      (D1's clock, so runner clocks do not matter). A push that cannot take it within its wait ends
//      `busy`, changes nothing, and exits EXIT_BUSY;
//   1. D1 (push only): the body's chunks, then the version's row, not active (checked by reading
//      them back);
//   2. KV: the payload chunks; D1: the version active until now and the headers of the versions
//      activated before it, read under the lease; renew the lease (a holder whose lease lapsed stops
//      here, `lost`); KV: `fallbacks` (those headers), then `active`;
//   3. D1, compare-and-swap on the lease: flag the row active, store its header and mark the attempt
//      `activated`, only while this attempt still holds the lease;
//   4. KV: delete chunks of versions no reader can be sent to (listed by step 3), then release the lease.
// A failure in 1 or 2 leaves the serving snapshot untouched; a failure in 3 leaves KV serving a
// version whose row exists, with stale active flags that the next push or rollback repairs; a failure
// in 4 leaves unused chunks that the next push deletes. A pusher that dies leaves its lease to expire
// (PUSH_LEASE_SECONDS) and its attempt `started`.

import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { historySnapshotText } from "../../src/policy/history-text";
import { readStoredHeader } from "../../src/policy/load-snapshot";
import { payloadChunks, STORED_HEADER_START, type StoredSnapshot } from "../../src/policy/snapshot-format";
import type { PolicyWriteStorage } from "../../src/policy/write-protocol";
import {
  activateStatements,
  CHUNK_KEY_PREFIX,
  fallbackStateOf,
  fallbackStateStatements,
  finishAttemptSql,
  historyBody,
  KEPT_VERSIONS_SQL,
  logAttemptSql,
  recordVersionStatements,
  releaseLeaseSql,
  renewLeaseSql,
  sqlString,
  storedVersionCheckSql,
  takeLeaseStatements,
  unusedChunkKeys,
  type AttemptOutcome,
} from "../../src/policy/write-sql";
import { ACTIVE_SNAPSHOT_KEY, FALLBACK_SNAPSHOTS_KEY, payloadChunkKey } from "../../src/policy/active-policy";
import { isPlainObject } from "../../src/encoding";
import type { NormalizedClaims, PolicySnapshot } from "../../src/types";
import type { SeenIdentity } from "./policy-replay";
import type { StorageTarget } from "../remote-d1";
import { wrangler } from "../wrangler";

/** seen_identities rows per D1 query of a plan's replay (each about 1 KB). */
const SEEN_IDENTITIES_PAGE = 5000;
/** wrangler processes reading chunks at once. */
const READ_CONCURRENCY = 4;
/** A random id for one push or rollback attempt (the lease holder). */
export function newAttemptId(): string {
  return randomBytes(12).toString("hex");
}

/** The statements of recordVersionStatements as one wrangler command. */
export function recordVersionSql(snapshot: PolicySnapshot, pushedBy: string, pushedAt: string): string {
  return `${recordVersionStatements(snapshot, pushedBy, pushedAt).join("\n")}\n`;
}

export { historySnapshotText } from "../../src/policy/history-text";
export {
  chunks,
  CHUNK_GRACE_SECONDS,
  historyBody,
  PUSH_LEASE_SECONDS,
  sqlString,
  unusedChunkKeys,
  type AttemptOutcome,
} from "../../src/policy/write-sql";

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

export class PolicyStorage implements PolicyWriteStorage {
  constructor(private readonly storage: StorageTarget) {}

  /** Stores the version (inactive) and checks it is whole. */
  async recordVersion(snapshot: PolicySnapshot, pushedBy: string, pushedAt: string): Promise<void> {
    await this.executeFile(recordVersionSql(snapshot, pushedBy, pushedAt));
    const [stored] = await this.query<{ n: number; bytes: number; chunks: number }>(
      storedVersionCheckSql(snapshot.version),
    );
    const body = historyBody(snapshot);
    if (!stored || stored.n !== stored.chunks || stored.bytes !== body.length)
      throw new Error("D1 did not store the whole snapshot; nothing was activated");
  }

  /** Logs an attempt as started (step 0), in the same command as its first try for the lease. */
  async logAttempt(
    attempt: string,
    action: "push" | "rollback",
    version: string,
    by: string,
  ): Promise<string | undefined> {
    return this.takeLease(attempt, by, `${logAttemptSql(attempt, action, version, by)} `);
  }

  /** Records how an attempt ended without activating (busy, lost, failed). */
  async finishAttempt(
    attempt: string,
    outcome: Exclude<AttemptOutcome, "started" | "activated">,
    detail: string,
  ): Promise<void> {
    await this.query(finishAttemptSql(attempt, outcome, detail));
  }

  /**
   * Takes the lease if no unexpired one is held (one conditional upsert, so atomic); returns undefined
   * when taken, or who holds it.
   */
  async takeLease(attempt: string, by: string, before = ""): Promise<string | undefined> {
    const rows = await this.query<{ holder: string; held_by: string }>(
      `${before}${takeLeaseStatements(attempt, by).join(" ")}`,
    );
    const row = rows.at(-1);
    return row?.holder === attempt ? undefined : (row?.held_by ?? "someone");
  }

  /** Extends the lease if this attempt still holds it; false when it lapsed and may be another's. */
  async renewLease(attempt: string): Promise<boolean> {
    const rows = await this.query<{ holder: string }>(renewLeaseSql(attempt));
    return rows.length === 1;
  }

  async releaseLease(attempt: string): Promise<void> {
    await this.query(releaseLeaseSql(attempt));
  }

  /** Writes the payload chunks (not yet served). */
  async putChunks(stored: StoredSnapshot): Promise<void> {
    const pairs = payloadChunks(stored.payload).map((value, i) => ({ key: payloadChunkKey(stored.header, i), value }));
    await this.withTempFile(JSON.stringify(pairs), (file) =>
      wrangler(["kv", "bulk", "put", file, "--binding", "POLICIES", ...this.storage.kvFlags()]),
    );
  }

  /**
   * Read under the lease: the version active until now (D1's flag) and the headers of the versions
   * activated before, newest first, other than `version`: where an isolate that cannot load `active`
   * goes (at most MAX_FALLBACK_SNAPSHOTS). A version active before the stored header was kept in D1
   * (pushed by an older CLI) is taken from KV `active`.
   */
  async fallbackState(version: string): Promise<{ active: string | undefined; headers: string[] }> {
    const rows = await this.query<{ version: string; stored_header: string | null; active: number }>(
      fallbackStateStatements(version).join(" "),
    );
    return fallbackStateOf(rows, version, () => this.readActiveValue());
  }

  async putFallbacks(headers: readonly string[]): Promise<void> {
    await this.withTempFile(JSON.stringify(headers), (file) =>
      wrangler([
        "kv",
        "key",
        "put",
        FALLBACK_SNAPSHOTS_KEY,
        "--binding",
        "POLICIES",
        "--path",
        file,
        ...this.storage.kvFlags(),
      ]),
    );
  }

  /** Points `active` at chunks already written: the one put that changes what is served. */
  async putActiveHeader(stored: StoredSnapshot): Promise<void> {
    await this.withTempFile(stored.headerText, (file) =>
      wrangler([
        "kv",
        "key",
        "put",
        ACTIVE_SNAPSHOT_KEY,
        "--binding",
        "POLICIES",
        "--path",
        file,
        ...this.storage.kvFlags(),
      ]),
    );
  }

  /** KV `active` as it is (a header, a whole format 1 snapshot, or undefined), without its chunks. */
  private async readActiveValue(): Promise<string | undefined> {
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
    return value.startsWith("{") ? value : undefined;
  }

  /**
   * The compare-and-swap of step 3, and (same command) the versions whose chunks must stay: `activated`
   * is false when this attempt no longer held the lease (nothing changed in D1). Kept: the versions
   * activated most recently (what `fallbacks` names) and those of any attempt started or finished
   * within CHUNK_GRACE_SECONDS (an `active` or `fallbacks` value still propagating, or a pusher still
   * writing).
   */
  async activate(
    version: string,
    headerText: string,
    attempt: string,
    replaced: string | undefined,
  ): Promise<{ activated: boolean; kept: string[] }> {
    const rows = await this.query<{ attempt?: string; kept?: string }>(
      `${activateStatements(version, headerText, attempt, replaced).join("\n")}\n${KEPT_VERSIONS_SQL}`,
    );
    return {
      activated: rows.some((row) => row.attempt === attempt),
      kept: rows.flatMap((row) => (row.kept ? [row.kept] : [])),
    };
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
    if (!value.startsWith("{")) return undefined;
    if (!value.startsWith(STORED_HEADER_START)) return value;
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

  /** Deletes the payload chunks of versions other than `keep`; returns how many. */
  async deleteUnusedChunks(keep: readonly string[]): Promise<number> {
    const listed = JSON.parse(
      await wrangler([
        "kv",
        "key",
        "list",
        "--binding",
        "POLICIES",
        "--prefix",
        CHUNK_KEY_PREFIX,
        ...this.storage.kvFlags(),
      ]),
    ) as { name: string }[];
    const unused = unusedChunkKeys(
      listed.map((entry) => entry.name),
      keep,
    );
    if (unused.length > 0) {
      await this.withTempFile(JSON.stringify(unused), (file) =>
        wrangler(["kv", "bulk", "delete", file, "--force", "--binding", "POLICIES", ...this.storage.kvFlags()]),
      );
    }
    return unused.length;
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

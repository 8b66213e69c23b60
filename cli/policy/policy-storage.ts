// Writing policy snapshots through wrangler (reading them: policy-history.ts): KV POLICIES (what the Worker serves) and D1
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
import { payloadChunks, type StoredSnapshot } from "../../src/policy/snapshot-format";
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
  storedVersionCheckSql,
  takeLeaseStatements,
  unusedChunkKeys,
  type AttemptOutcome,
} from "../../src/policy/write-sql";
import { ACTIVE_SNAPSHOT_KEY, FALLBACK_SNAPSHOTS_KEY, payloadChunkKey } from "../../src/policy/active-policy";
import type { PolicySnapshot } from "../../src/types";
import { wrangler } from "../wrangler";
import { PolicyHistory } from "./policy-history";

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

export { seenIdentityOf, type AttemptRow, type HistoryRow } from "./policy-history";

export class PolicyStorage extends PolicyHistory implements PolicyWriteStorage {
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
}

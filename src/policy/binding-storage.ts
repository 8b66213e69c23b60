// The write protocol's storage (write-protocol.ts) through the Worker's own bindings: KV POLICIES and
// D1 DB, running the same SQL as the CLI (write-sql.ts). Statements that the CLI sends as one wrangler
// command go to D1 as one batch (a single transaction), so each step is as atomic here as there.

import type { Env } from "../config";
import type { PolicySnapshot } from "../types";
import { payloadChunks, STORED_HEADER_START, type StoredSnapshot } from "./snapshot-format";
import { ACTIVE_SNAPSHOT_KEY, FALLBACK_SNAPSHOTS_KEY, payloadChunkKey } from "./active-policy";
import type { PolicyWriteStorage } from "./write-protocol";
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
  type FallbackRow,
} from "./write-sql";

export class BindingPolicyStorage implements PolicyWriteStorage {
  constructor(private readonly env: Pick<Env, "DB" | "POLICIES">) {}

  async logAttempt(
    attempt: string,
    action: "push" | "rollback",
    version: string,
    by: string,
  ): Promise<string | undefined> {
    return this.leaseHolder(
      attempt,
      await this.batch([logAttemptSql(attempt, action, version, by), ...takeLeaseStatements(attempt, by)]),
    );
  }

  async takeLease(attempt: string, by: string): Promise<string | undefined> {
    return this.leaseHolder(attempt, await this.batch(takeLeaseStatements(attempt, by)));
  }

  async finishAttempt(
    attempt: string,
    outcome: Exclude<AttemptOutcome, "started" | "activated">,
    detail: string,
  ): Promise<void> {
    await this.env.DB.prepare(finishAttemptSql(attempt, outcome, detail)).run();
  }

  async renewLease(attempt: string): Promise<boolean> {
    const { results } = await this.env.DB.prepare(renewLeaseSql(attempt)).all();
    return results.length === 1;
  }

  async releaseLease(attempt: string): Promise<void> {
    await this.env.DB.prepare(releaseLeaseSql(attempt)).run();
  }

  async recordVersion(snapshot: PolicySnapshot, pushedBy: string, pushedAt: string): Promise<void> {
    await this.batch(recordVersionStatements(snapshot, pushedBy, pushedAt));
    const stored = await this.env.DB.prepare(storedVersionCheckSql(snapshot.version)).first<{
      n: number;
      bytes: number;
      chunks: number;
    }>();
    if (!stored || stored.n !== stored.chunks || stored.bytes !== historyBody(snapshot).length)
      throw new Error("D1 did not store the whole snapshot; nothing was activated");
  }

  async putChunks(stored: StoredSnapshot): Promise<void> {
    await Promise.all(
      payloadChunks(stored.payload).map((value, i) => this.env.POLICIES.put(payloadChunkKey(stored.header, i), value)),
    );
  }

  async fallbackState(version: string): Promise<{ active: string | undefined; headers: string[] }> {
    const rows = (await this.batch(fallbackStateStatements(version))).flat() as unknown as FallbackRow[];
    return fallbackStateOf(rows, version, async () => {
      const value = await this.env.POLICIES.get(ACTIVE_SNAPSHOT_KEY);
      return value?.startsWith(STORED_HEADER_START) ? value : undefined;
    });
  }

  async putFallbacks(headers: readonly string[]): Promise<void> {
    await this.env.POLICIES.put(FALLBACK_SNAPSHOTS_KEY, JSON.stringify(headers));
  }

  async putActiveHeader(stored: StoredSnapshot): Promise<void> {
    await this.env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, stored.headerText);
  }

  async activate(
    version: string,
    headerText: string,
    attempt: string,
    replaced: string | undefined,
  ): Promise<{ activated: boolean; kept: string[] }> {
    const results = await this.batch([
      ...activateStatements(version, headerText, attempt, replaced),
      KEPT_VERSIONS_SQL,
    ]);
    const marked = results.at(-2) ?? [];
    const kept = results.at(-1) ?? [];
    return {
      activated: marked.some((row) => row.attempt === attempt),
      kept: kept.flatMap((row) => (typeof row.kept === "string" ? [row.kept] : [])),
    };
  }

  async deleteUnusedChunks(keep: readonly string[]): Promise<number> {
    const listed: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.env.POLICIES.list({ prefix: CHUNK_KEY_PREFIX, ...(cursor ? { cursor } : {}) });
      listed.push(...page.keys.map((key) => key.name));
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    const unused = unusedChunkKeys(listed, keep);
    await Promise.all(unused.map((key) => this.env.POLICIES.delete(key)));
    return unused.length;
  }

  /** The lease row after an attempt to take it: undefined when `attempt` holds it, else who does. */
  private leaseHolder(attempt: string, results: Record<string, unknown>[][]): string | undefined {
    const row = results.at(-1)?.at(-1) as { holder?: string; held_by?: string } | undefined;
    return row?.holder === attempt ? undefined : (row?.held_by ?? "someone");
  }

  /** Runs the statements as one D1 batch (one transaction); each statement's rows. */
  private async batch(statements: readonly string[]): Promise<Record<string, unknown>[][]> {
    const results = await this.env.DB.batch(statements.map((sql) => this.env.DB.prepare(sql)));
    return results.map((result) => (result.results ?? []) as Record<string, unknown>[]);
  }
}

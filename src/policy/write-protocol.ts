// The policy write protocol (docs/storage.md, "Write protocol"), written once for both writers: the
// CLI (storage through wrangler, cli/policy/store.ts) and the Worker's admin push (its KV and D1
// bindings, binding-storage.ts). KV has no compare-and-swap, so D1 serialises pushes and rollbacks:
//   0. D1: log the attempt (policy_pushes, `started`) and take the lease (a conditional upsert, D1's
//      clock); an attempt that cannot take it within its wait ends `busy` and changes nothing;
//   1. D1 (push only): the body's chunks, then the version's row, not active (read back);
//   2. KV: the payload chunks; D1: the active version and the headers of those activated before it,
//      read under the lease; renew the lease (a holder whose lease lapsed stops here, `lost`); KV:
//      `fallbacks`, then `active`;
//   3. D1, compare-and-swap on the lease: flag the row active, store its header, mark the attempt
//      `activated`, only while this attempt still holds the lease;
//   4. KV: delete chunks no reader can be sent to, then release the lease.

import type { PolicySnapshot } from "../types";
import type { StoredSnapshot } from "./snapshot-format";
import { PUSH_LEASE_SECONDS, type AttemptOutcome } from "./write-sql";

/** Where a writer keeps policies: the operations the protocol needs, each one storage round trip or a few. */
export interface PolicyWriteStorage {
  /** Logs the attempt as started and tries for the lease once: undefined when taken, else who holds it. */
  logAttempt(attempt: string, action: "push" | "rollback", version: string, by: string): Promise<string | undefined>;
  takeLease(attempt: string, by: string): Promise<string | undefined>;
  finishAttempt(
    attempt: string,
    outcome: Exclude<AttemptOutcome, "started" | "activated">,
    detail: string,
  ): Promise<void>;
  renewLease(attempt: string): Promise<boolean>;
  releaseLease(attempt: string): Promise<void>;
  /** Stores the version (inactive) and checks it is whole. */
  recordVersion(snapshot: PolicySnapshot, pushedBy: string, pushedAt: string): Promise<void>;
  putChunks(stored: StoredSnapshot): Promise<void>;
  fallbackState(version: string): Promise<{ active: string | undefined; headers: string[] }>;
  putFallbacks(headers: readonly string[]): Promise<void>;
  putActiveHeader(stored: StoredSnapshot): Promise<void>;
  activate(
    version: string,
    headerText: string,
    attempt: string,
    replaced: string | undefined,
  ): Promise<{ activated: boolean; kept: string[] }>;
  deleteUnusedChunks(keep: readonly string[]): Promise<number>;
}

export interface WriteRequest {
  action: "push" | "rollback";
  version: string;
  by: string;
  waitSeconds: number;
}

/** How an attempt ended. `busy` and the first `lost` changed nothing served; `lost` with servedChanged did. */
export type WriteResult =
  | { outcome: "activated"; replaced: string | undefined; cleanupError?: string }
  | { outcome: "busy"; sentence: string }
  | { outcome: "lost"; sentence: string; servedChanged: boolean };

export interface WriteClock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Lease polls: the first after minMs, doubling up to maxMs. */
  pollMs: { min: number; max: number };
  newAttemptId(): string;
}

/**
 * Runs a push (with `snapshot`, recorded in history first, so KV never names a version D1 does not
 * know) or a rollback (without) under the lease, steps 0 to 4.
 */
export async function writePolicy(
  storage: PolicyWriteStorage,
  clock: WriteClock,
  write: WriteRequest,
  stored: StoredSnapshot,
  record?: { snapshot: PolicySnapshot; pushedAt: string },
): Promise<WriteResult> {
  const attempt = clock.newAttemptId();
  const deadline = clock.now() + write.waitSeconds * 1000;
  let holder = await storage.logAttempt(attempt, write.action, write.version, write.by);
  for (
    let pause = clock.pollMs.min;
    holder !== undefined && clock.now() + pause <= deadline;
    pause = Math.min(pause * 2, clock.pollMs.max)
  ) {
    await clock.sleep(pause);
    holder = await storage.takeLease(attempt, write.by);
  }
  if (holder !== undefined) {
    const sentence = `another policy push or rollback (by ${holder}) was still running after ${write.waitSeconds} s`;
    await storage.finishAttempt(attempt, "busy", sentence);
    return { outcome: "busy", sentence };
  }
  try {
    if (record) await storage.recordVersion(record.snapshot, write.by, record.pushedAt);
    return await serve(storage, stored, attempt, write.action);
  } catch (e) {
    await storage.finishAttempt(attempt, "failed", (e as Error).message).catch(() => undefined);
    throw e;
  } finally {
    await storage.releaseLease(attempt).catch(() => undefined);
  }
}

/** Steps 2 to 4: chunks, `fallbacks`, `active`, the compare-and-swap in D1, then the clean-up. */
async function serve(
  storage: PolicyWriteStorage,
  stored: StoredSnapshot,
  attempt: string,
  action: WriteRequest["action"],
): Promise<WriteResult> {
  const { version } = stored.header;
  await storage.putChunks(stored);
  // Under the lease: the version active until now, read after any other write finished.
  const { active: replaced, headers } = await storage.fallbackState(version);
  // Last check before KV's served keys change: a holder whose lease lapsed may race the next holder.
  if (!(await storage.renewLease(attempt))) {
    const sentence =
      `this ${action} took longer than its ${PUSH_LEASE_SECONDS} s lease and another push or ` +
      `rollback may have started`;
    await storage.finishAttempt(attempt, "lost", sentence);
    return { outcome: "lost", sentence, servedChanged: false };
  }
  await storage.putFallbacks(headers);
  await storage.putActiveHeader(stored);
  const { activated, kept } = await storage.activate(version, stored.headerText, attempt, replaced);
  if (!activated) {
    const sentence = `KV now serves ${version}, but this write's lease lapsed before D1 recorded it`;
    await storage.finishAttempt(attempt, "lost", sentence);
    return { outcome: "lost", sentence, servedChanged: true };
  }
  // A failure only leaves unused chunks behind, which the next push deletes.
  try {
    await storage.deleteUnusedChunks([version, ...kept]);
    return { outcome: "activated", replaced };
  } catch (e) {
    return { outcome: "activated", replaced, cleanupError: (e as Error).message };
  }
}

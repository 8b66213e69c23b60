// The active policy snapshot, held in isolate memory. A warm isolate never waits on KV: once a snapshot
// is loaded, re-checks (at most every POLICY_RECHECK_MS) run in the background via waitUntil.
//
// Failure semantics (fail closed):
// - no snapshot in KV, or a corrupt one, and nothing good in memory → policy_unavailable (503);
// - KV unreachable or returning a corrupt snapshot → the last good in-memory snapshot keeps serving;
// - snapshot deleted from KV → the isolate drops its copy too (deleting the key is an emergency stop).

import type { Env } from "../config";
import type { Deps, WaitUntil } from "../deps";
import { GatepassError } from "../errors";
import { POLICY_RECHECK_MS } from "../limits";
import { loadSnapshot, type CompiledPolicy } from "./compile";

/** KV key (in POLICIES) of the active snapshot; see docs/storage.md. */
export const ACTIVE_SNAPSHOT_KEY = "active";

export class PolicyStore {
  private policy: CompiledPolicy | undefined;
  private rawText: string | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private reloading: Promise<void> | undefined;
  /** Last reason a reload did not produce a usable snapshot (for admin status). */
  lastError: string | undefined;

  constructor(private readonly deps: Deps) {}

  async current(env: Env, waitUntil: WaitUntil): Promise<CompiledPolicy> {
    if (this.policy) {
      if (this.deps.now() - this.checkedAt >= POLICY_RECHECK_MS) waitUntil(this.reload(env));
      return this.policy;
    }
    await this.reload(env);
    if (!this.policy) throw new GatepassError("policy_unavailable", { cause: this.lastError });
    return this.policy;
  }

  /** Single-flight reload from KV. */
  reload(env: Env): Promise<void> {
    this.reloading ??= this.readFromKv(env).finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async readFromKv(env: Env): Promise<void> {
    this.checkedAt = this.deps.now();
    let text: string | null;
    try {
      text = await env.POLICIES.get(ACTIVE_SNAPSHOT_KEY);
    } catch (err) {
      this.lastError = `KV read failed: ${String(err)}`;
      return;
    }
    if (text === null) {
      this.policy = undefined;
      this.rawText = undefined;
      this.lastError = "no active snapshot in KV";
      return;
    }
    if (text === this.rawText) {
      // KV serves the snapshot already loaded: whatever failed before (a KV error, a refused push
      // that was since replaced by this one) is over, and admin status must stop reporting it.
      this.lastError = undefined;
      return;
    }
    try {
      this.policy = await loadSnapshot(text);
      this.rawText = text;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = `snapshot rejected: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
}

// The active policy snapshot, held in isolate memory. A warm isolate never waits on KV: once a snapshot
// is loaded, re-checks (at most every POLICY_RECHECK_MS) run in the background via waitUntil. In
// development with GATEPASS_POLICY_RECHECK=every-request (`gatepass dev`), a request waits for a
// re-check instead, so the request after a push sees it.
//
// KV `active` holds either a stored snapshot's header (a pointer: the payload lies in content-addressed
// chunk keys, written before the pointer, so a reader never sees a half-written snapshot) or, as push
// wrote before the stored form existed, a whole format 1 snapshot. A re-check reads only `active` and
// reads the chunks only when it changed.
//
// Failure semantics (fail closed):
// - `active` names a snapshot that cannot be loaded (a missing chunk, a refused snapshot) → the newest
//   version of KV `fallbacks` (headers of the versions activated before it, newest first, each checked
//   like `active`) that loads, or is the one already in memory, serves instead, and admin status says
//   so (`fallback_from`, `last_error`);
// - no snapshot in KV, or a corrupt one with no loadable fallback, and nothing good in memory →
//   policy_unavailable (503);
// - KV unreachable → the last good in-memory snapshot keeps serving;
// - snapshot deleted from KV → the isolate drops its copy too (deleting the key is an emergency stop).

import { policyRecheckEveryRequest, type Env } from "../config";
import type { Deps, WaitUntil } from "../deps";
import { GatepassError } from "../errors";
import { POLICY_RECHECK_MS } from "../limits";
import type { CompiledPolicy } from "./compile-policy";
import { loadSnapshot, loadStoredSnapshot, readStoredHeader } from "./load-snapshot";
import { STORED_HEADER_START, type StoredHeader } from "./snapshot-format";

/** KV key (in POLICIES) of the active snapshot or its header; see docs/storage.md. */
export const ACTIVE_SNAPSHOT_KEY = "active";

/** KV key (in POLICIES) of a JSON array of stored headers: where a reader goes when `active` cannot be loaded. */
export const FALLBACK_SNAPSHOTS_KEY = "fallbacks";
/** Versions `fallbacks` names at most (the CLI keeps their chunks). */
export const MAX_FALLBACK_SNAPSHOTS = 3;

/** KV key of chunk `i` of a stored snapshot's payload. Addressed by content: a key never changes value. */
export function payloadChunkKey(header: Pick<StoredHeader, "version" | "index_sha256">, i: number): string {
  return `snapshot:${header.version}:${header.index_sha256}:${i}`;
}

/** A KV read that failed (as opposed to a value that was refused): the last good snapshot keeps serving. */
class KvReadError extends Error {}

export class PolicyStore {
  private policy: CompiledPolicy | undefined;
  private rawText: string | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private reloading: Promise<void> | undefined;
  private reloadError: string | undefined;
  private fallbackFrom: string | undefined;

  constructor(private readonly deps: Deps) {}

  /**
   * Last reason a reload did not produce a usable snapshot, or a rule of the loaded one was refused (for admin status).
   */
  get lastError(): string | undefined {
    return this.reloadError ?? this.policy?.refusal;
  }

  async current(env: Env, waitUntil: WaitUntil): Promise<CompiledPolicy> {
    if (this.policy && policyRecheckEveryRequest(env)) await this.reload(env);
    if (this.policy) {
      if (this.deps.now() - this.checkedAt >= POLICY_RECHECK_MS) waitUntil(this.reload(env));
      return this.policy;
    }
    await this.reload(env);
    if (!this.policy) throw new GatepassError("policy_unavailable", { cause: this.reloadError });
    return this.policy;
  }

  /** The version `active` names when a fallback serves instead (it could not be loaded), else undefined. */
  get servingFallbackFrom(): string | undefined {
    return this.fallbackFrom;
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
      this.reloadError = `KV read failed: ${String(err)}`;
      return;
    }
    if (text === null) {
      this.policy = undefined;
      this.rawText = undefined;
      this.fallbackFrom = undefined;
      this.reloadError = "no active snapshot in KV";
      return;
    }
    if (text === this.rawText) {
      // KV serves the snapshot already loaded: whatever failed before (a KV error, a refused push
      // that was since replaced by this one) is over, and admin status must stop reporting it. When a
      // fallback serves for it, the reason stays: content-addressed chunks do not come back.
      this.reloadError = this.fallbackFrom === undefined ? undefined : this.reloadError;
      return;
    }
    try {
      this.policy = text.startsWith(STORED_HEADER_START) ? await loadPointed(env, text) : await loadSnapshot(text);
      this.rawText = text;
      this.reloadError = undefined;
      this.fallbackFrom = undefined;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof KvReadError) {
        this.reloadError = `KV read failed: ${message}`;
        return;
      }
      this.reloadError = `snapshot rejected: ${message}`;
      await this.fallBack(env, text);
    }
  }

  /**
   * `active` (text) was refused: serves the newest version of `fallbacks` that loads (or is already
   * loaded). Nothing loadable: the isolate keeps what it had (or stays without a policy).
   */
  private async fallBack(env: Env, activeText: string): Promise<void> {
    let headers: string[];
    try {
      const listed: unknown = JSON.parse((await env.POLICIES.get(FALLBACK_SNAPSHOTS_KEY)) ?? "[]");
      headers = Array.isArray(listed)
        ? listed.filter((h): h is string => typeof h === "string").slice(0, MAX_FALLBACK_SNAPSHOTS)
        : [];
    } catch {
      return;
    }
    const from = activeText.startsWith(STORED_HEADER_START) ? safeVersion(activeText) : "(format 1 snapshot)";
    for (const headerText of headers) {
      try {
        const policy =
          this.policy?.version === readStoredHeader(headerText).version
            ? this.policy
            : await loadPointed(env, headerText);
        this.policy = policy;
        this.rawText = activeText;
        this.fallbackFrom = from;
        this.reloadError = `${this.reloadError}; serving the newest loadable earlier version ${policy.version} instead`;
        return;
      } catch {
        // an older fallback may still load
      }
    }
  }
}

function safeVersion(headerText: string): string {
  try {
    return readStoredHeader(headerText).version;
  } catch {
    return "(unreadable header)";
  }
}

/** Reads the chunks `active` points at (all at once) and loads them. */
async function loadPointed(env: Env, headerText: string): Promise<CompiledPolicy> {
  const header = readStoredHeader(headerText);
  // As bytes: they are hashed as they are, and only what is parsed gets decoded.
  const chunks = await Promise.all(
    Array.from({ length: header.chunks }, (_, i) =>
      env.POLICIES.get(payloadChunkKey(header, i), "arrayBuffer").catch((err: unknown) => {
        throw new KvReadError(String(err));
      }),
    ),
  );
  const missing = chunks.indexOf(null);
  if (missing >= 0) {
    throw new GatepassError("policy_invalid", {
      description: `The policy snapshot was refused: its chunk ${missing} of ${header.chunks} is missing.`,
    });
  }
  const payload = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk!.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    payload.set(new Uint8Array(chunk!), at);
    at += chunk!.byteLength;
  }
  return loadStoredSnapshot(header, payload);
}

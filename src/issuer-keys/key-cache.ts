// Issuer keys, layered: isolate memory → KV `JWKS` → the issuer's network endpoints.
//
// - Warm path: keys (and their imported CryptoKeys) are in memory and fresh → no KV read, no fetch.
// - Stale in memory: served at once while a single-flight reload runs in the background
//   (KV first, since the cron or another isolate may have refreshed it; then the network).
// - Unknown kid: refused at once (key_unknown) without waiting on KV or the network; at most one
//   background reload per issuer per cooldown, single-flight, so a retry finds a rotated-in key.
// - Network failures back off; cached keys keep serving until JWKS_MAX_STALE_SECONDS after they were
//   fetched, then verification fails closed with jwks_unavailable.
// - Pushed keys (private issuers) are never fetched: memory → KV only. Keys a push removes keep
//   verifying for the issuer's max token age (`retired`), so jobs that started before a rotation
//   finish; a push may drop them at once instead.
// KV layout: docs/storage.md. The stored record and its rules are in stored-key-set.ts, one issuer's
// keys in this isolate in in-memory-keys.ts, the network layer in key-set-download.ts.

import type { Env } from "../config";
import { nowSeconds, type Deps, type WaitUntil } from "../deps";
import { GatepassError } from "../errors";
import {
  JWKS_FAILURE_BACKOFF_SECONDS,
  JWKS_REFRESH_AHEAD_SECONDS,
  JWKS_UNKNOWN_KID_COOLDOWN_SECONDS,
  PUSHED_JWKS_RECHECK_SECONDS,
} from "../limits";
import { log } from "../log";
import type { IssuerConfig } from "../types";
import { keyFitsAlgorithm } from "../verify/algorithms";
import { IssuerKeys } from "./in-memory-keys";
import type { PublicJwk } from "./key-set-validation";
import { downloadKeySet } from "./key-set-download";
import {
  jwksStorageKey,
  maxAgeOf,
  parseStoredKeySet,
  pushedKeySet,
  pushGraceSeconds,
  retireKeys,
  sameKeySet,
  supersedes,
  type IssuerKeyStatus,
  type StoredKeySet,
} from "./stored-key-set";

export class KeyCache {
  private readonly issuers = new Map<string, IssuerKeys>();

  constructor(
    private readonly deps: Deps,
    private readonly fetchTimeoutMs: number,
  ) {}

  /**
   * Warm path, synchronous: the imported key when the issuer's keys are in memory, fresh (no reload
   * due) and this kid/alg already passed the checks in key(). Otherwise undefined: call key().
   */
  warmKey(issuer: IssuerConfig, kid: string, alg: string): CryptoKey | undefined {
    const state = this.issuers.get(issuer.name);
    if (!state || state.identity !== identityOf(issuer)) return undefined;
    const now = nowSeconds(this.deps);
    return now < state.recheckAt && state.usable(now) ? state.readyKey(kid, alg) : undefined;
  }

  /** The verification key for (issuer, kid, alg), through the layers; throws key_unknown / jwks_unavailable. */
  async key(issuer: IssuerConfig, kid: string, alg: string, env: Env, defer: WaitUntil): Promise<CryptoKey> {
    const state = this.stateFor(issuer);
    const now = nowSeconds(this.deps);
    const cold = !state.usable(now);
    if (cold) {
      // No usable keys at the last look: until its re-check is due, answer from that look, so tokens
      // naming this issuer (unsigned ones cost nothing to make) do not each cost a KV read.
      if (now >= state.recheckAt) await this.load(state, issuer, env, defer);
      if (!state.usable(nowSeconds(this.deps))) {
        throw new GatepassError("jwks_unavailable", {
          headers: { "Retry-After": String(JWKS_FAILURE_BACKOFF_SECONDS) },
          cause: state.lastError,
        });
      }
    } else if (now >= state.recheckAt) {
      defer(this.load(state, issuer, env, defer));
    }

    const jwk = state.find(kid, now);
    if (!jwk) {
      // Refused at once; the reload for this kid (a rotation, a push) runs in the background and a retry
      // finds the key. Waiting for it would let an unsigned token tell a configured issuer from an
      // unknown one by how long its refusal takes (docs/verification.md, "Unknown kid").
      this.reloadForKid(state, issuer, env, defer, kid, now);
      throw new GatepassError("key_unknown");
    }
    if ((jwk.alg !== undefined && jwk.alg !== alg) || !keyFitsAlgorithm(alg, jwk)) {
      throw new GatepassError("signature_invalid", {
        description: "The token's alg does not match the key its kid names.",
      });
    }
    return state.cryptoKey(jwk, alg);
  }

  /**
   * At most one kid-driven reload per issuer per cooldown, never awaited. None while a reload runs
   * (it fetches the current set anyway) or when the keys in memory were fetched this very second (a
   * cold load just did): reloading would learn nothing. Pushed sets carry the pushing machine's clock,
   * so for them that test means nothing.
   */
  private reloadForKid(
    state: IssuerKeys,
    issuer: IssuerConfig,
    env: Env,
    defer: WaitUntil,
    kid: string,
    now: number,
  ): void {
    if (
      state.loading ||
      now < state.kidReloadAllowedAt ||
      (state.set !== undefined && state.set.source !== "pushed" && state.set.fetched_at >= now)
    )
      return;
    state.kidReloadAllowedAt = now + JWKS_UNKNOWN_KID_COOLDOWN_SECONDS;
    defer(this.load(state, issuer, env, defer, kid));
  }

  /** Cron: refresh fetched key sets that are stale or will be within JWKS_REFRESH_AHEAD_SECONDS. */
  async refresh(issuers: readonly IssuerConfig[], env: Env): Promise<void> {
    await Promise.all(
      issuers
        .filter((issuer) => issuer.keys.source !== "pushed")
        .map(async (issuer) => {
          const state = this.stateFor(issuer);
          if (state.loading) await state.loading;
          const { set: stored } = await this.readStored(env, issuer, state);
          if (stored && supersedes(stored, state.set)) state.adopt(stored);
          const now = nowSeconds(this.deps);
          if (state.set && now < state.set.fresh_until - JWKS_REFRESH_AHEAD_SECONDS) return;
          try {
            const writes: Promise<unknown>[] = [];
            await this.fetchInto(state, issuer, env, (write) => writes.push(write));
            await Promise.all(writes);
          } catch (err) {
            const last = stored ?? state.set;
            if (last) await this.noteRefreshFailure(env, issuer, state, last, reason(err), now);
          }
        }),
    );
  }

  async status(issuers: readonly IssuerConfig[], env: Env): Promise<IssuerKeyStatus[]> {
    const now = nowSeconds(this.deps);
    return Promise.all(
      issuers.map(async (issuer) => {
        const state = this.stateFor(issuer);
        const { set: stored } = await this.readStored(env, issuer, state);
        const set = stored ?? state.set;
        const status: IssuerKeyStatus = {
          name: issuer.name,
          source: issuer.keys.source,
          fetched_at: set?.fetched_at ?? null,
          fresh_until: set?.fresh_until ?? null,
          kids: set?.keys.map((key) => key.kid) ?? [],
          last_error: state.lastError ?? set?.last_error ?? null,
          age_seconds: set ? Math.max(0, now - set.fetched_at) : null,
        };
        if (issuer.keys.source === "pushed") {
          status.pushed_by = set?.pushed_by ?? null;
          status.retired = (set?.retired ?? [])
            .filter((r) => r.until > now)
            .map((r) => ({ kid: r.key.kid, until: r.until }));
        }
        return status;
      }),
    );
  }

  /**
   * Stores a validated pushed key set (KV first, then this isolate's memory). Keys the stored set
   * had and this one lacks are retired for the issuer's grace time, unless `dropPrevious`.
   */
  async storePushed(
    issuer: IssuerConfig,
    keys: PublicJwk[],
    env: Env,
    push: { pushedBy: string; dropPrevious?: boolean },
  ): Promise<StoredKeySet> {
    const state = this.stateFor(issuer);
    // A KV read that fails retires nothing it cannot see: fewer keys verify, never more.
    const { set: previous } = push.dropPrevious ? { set: undefined } : await this.readStored(env, issuer, state);
    const now = nowSeconds(this.deps);
    const retired = retireKeys(previous, keys, now, push.dropPrevious ? 0 : pushGraceSeconds(issuer));
    const set = pushedKeySet(issuer.url, keys, now, { pushedBy: push.pushedBy, retired });
    await this.writeStored(env, issuer.name, set);
    state.adopt(set);
    state.lastError = undefined;
    state.recheckAt = state.recheckBy(now + PUSHED_JWKS_RECHECK_SECONDS, now);
    return set;
  }

  /**
   * Records a failed refresh on the last good set, unless KV meanwhile holds another set (an isolate
   * fetched or an admin pushed while this refresh was failing): that one must not be overwritten.
   */
  private async noteRefreshFailure(
    env: Env,
    issuer: IssuerConfig,
    state: IssuerKeys,
    last: StoredKeySet,
    error: string,
    now: number,
  ): Promise<void> {
    const { set: current, read } = await this.readStored(env, issuer, state);
    if (!read || (current && !sameKeySet(current, last))) return;
    await this.writeStored(env, issuer.name, { ...last, last_error: error, last_error_at: now });
  }

  private stateFor(issuer: IssuerConfig): IssuerKeys {
    // A policy change to the issuer's URL or key source starts from scratch.
    const identity = identityOf(issuer);
    let state = this.issuers.get(issuer.name);
    if (!state || state.identity !== identity) {
      state = new IssuerKeys(identity);
      this.issuers.set(issuer.name, state);
    }
    return state;
  }

  /** Single-flight reload per issuer. */
  private load(state: IssuerKeys, issuer: IssuerConfig, env: Env, defer: WaitUntil, wantedKid?: string): Promise<void> {
    state.loading ??= this.reload(state, issuer, env, defer, wantedKid).finally(() => {
      state.loading = undefined;
    });
    return state.loading;
  }

  private async reload(
    state: IssuerKeys,
    issuer: IssuerConfig,
    env: Env,
    defer: WaitUntil,
    wantedKid?: string,
  ): Promise<void> {
    const now = nowSeconds(this.deps);
    const { set: stored, read } = await this.readStored(env, issuer, state);
    if (stored && supersedes(stored, state.set)) state.adopt(stored);

    if (issuer.keys.source === "pushed") {
      // Deleting the KV record revokes pushed keys everywhere.
      if (read && !stored) state.drop();
      state.recheckAt = state.recheckBy(now + (read ? PUSHED_JWKS_RECHECK_SECONDS : JWKS_FAILURE_BACKOFF_SECONDS), now);
      return;
    }
    const set = state.set;
    const needNetwork = !set || now >= set.fresh_until || (wantedKid !== undefined && !state.find(wantedKid, now));
    if (!needNetwork) {
      state.recheckAt = set.fresh_until;
      return;
    }
    if (now < state.networkAllowedAt) {
      state.recheckAt = state.networkAllowedAt;
      return;
    }
    try {
      await this.fetchInto(state, issuer, env, defer);
    } catch {
      state.networkAllowedAt = now + JWKS_FAILURE_BACKOFF_SECONDS;
      state.recheckAt = state.networkAllowedAt;
    }
  }

  /** Network layer: fetch, adopt, persist. Throws after recording the failure. */
  private async fetchInto(state: IssuerKeys, issuer: IssuerConfig, env: Env, defer: WaitUntil): Promise<void> {
    let set: StoredKeySet;
    try {
      set = await downloadKeySet(this.deps, issuer, env, this.fetchTimeoutMs);
    } catch (err) {
      state.lastError = reason(err);
      log("warn", "jwks_fetch_failed", { issuer: issuer.name, reason: state.lastError });
      throw err;
    }
    state.adopt(set);
    state.lastError = undefined;
    state.recheckAt = set.fresh_until;
    state.networkAllowedAt = 0;
    defer(this.writeStored(env, issuer.name, set));
  }

  /** KV layer read; `read` is false when KV itself failed (then nothing is concluded from absence). */
  private async readStored(
    env: Env,
    issuer: IssuerConfig,
    state: IssuerKeys,
  ): Promise<{ set: StoredKeySet | undefined; read: boolean }> {
    try {
      return { set: parseStoredKeySet(await env.JWKS.get(jwksStorageKey(issuer.name)), issuer), read: true };
    } catch (err) {
      state.lastError = `KV read failed: ${reason(err)}`;
      return { set: undefined, read: false };
    }
  }

  private async writeStored(env: Env, issuerName: string, set: StoredKeySet): Promise<void> {
    // KV drops the record once it may no longer be used (KV's minimum TTL is 60 s).
    const ttl = set.fetched_at + maxAgeOf(set.source) - nowSeconds(this.deps);
    if (ttl < 60) return;
    try {
      await env.JWKS.put(jwksStorageKey(issuerName), JSON.stringify(set), { expirationTtl: ttl });
    } catch (err) {
      log("warn", "jwks_store_failed", { issuer: issuerName, reason: reason(err) });
      if (set.source === "pushed") throw err;
    }
  }
}

const identities = new WeakMap<IssuerConfig, string>();

/** What the cached keys of an issuer depend on: its URL and key source. */
function identityOf(issuer: IssuerConfig): string {
  let identity = identities.get(issuer);
  if (identity === undefined) {
    identity = `${issuer.url}\n${JSON.stringify(issuer.keys)}`;
    identities.set(issuer, identity);
  }
  return identity;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

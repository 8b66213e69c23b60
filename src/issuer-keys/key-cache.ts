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
// KV layout: docs/storage.md.

import type { Env } from "../config";
import { nowSeconds, type Deps, type WaitUntil } from "../deps";
import { GatepassError } from "../errors";
import {
  CLOCK_SKEW_SECONDS,
  JWKS_DEFAULT_FRESH_SECONDS,
  JWKS_FAILURE_BACKOFF_SECONDS,
  JWKS_MAX_FRESH_SECONDS,
  JWKS_MAX_STALE_SECONDS,
  JWKS_MIN_FRESH_SECONDS,
  JWKS_REFRESH_AHEAD_SECONDS,
  JWKS_UNKNOWN_KID_COOLDOWN_SECONDS,
  MAX_DISCOVERY_BYTES,
  MAX_JWKS_BYTES,
  MAX_JWKS_KEYS,
  PUSHED_JWKS_MAX_AGE_SECONDS,
  PUSHED_JWKS_RECHECK_SECONDS,
} from "../limits";
import { log } from "../log";
import type { IssuerConfig, KeySource } from "../types";
import { importJWK } from "jose";
import { keyFitsAlgorithm } from "../verify/algorithms";
import { isPlainObject } from "../encoding";
import { fetchIssuerJson } from "./issuer-fetch";
import { usablePublicKeys, type PublicJwk } from "./key-set-validation";

export type KeySourceName = KeySource["source"];

/** The value stored in KV `JWKS` under `issuer:<name>`. Times are seconds since the epoch. */
export interface StoredKeySet {
  issuer_url: string;
  source: KeySourceName;
  /** For `source: jwks_uri`, the URL the keys came from: a record fetched from another URL is ignored. */
  jwks_uri?: string;
  keys: PublicJwk[];
  fetched_at: number;
  fresh_until: number;
  /** Why the last refresh failed (the keys above are still the last good ones). */
  last_error?: string;
  last_error_at?: number;
  /** Pushed sets: who pushed them ("admin", a push credential's id, or "wrangler:<who>" for the CLI). */
  pushed_by?: string;
  /** Pushed sets: keys an earlier push had and a later one removed, each verifying until `until`. */
  retired?: RetiredKey[];
}

export interface RetiredKey {
  key: PublicJwk;
  /** Seconds since the epoch; from then on the key verifies nothing. */
  until: number;
}

export interface IssuerKeyStatus {
  name: string;
  source: KeySourceName;
  fetched_at: number | null;
  fresh_until: number | null;
  kids: string[];
  last_error: string | null;
  /** Seconds since the keys were fetched or pushed (by the Worker's clock; a push stamped ahead shows 0). */
  age_seconds: number | null;
  /** Pushed issuers: who pushed the keys, and the removed keys that still verify. */
  pushed_by?: string | null;
  retired?: { kid: string; until: number }[];
}

export const jwksStorageKey = (issuerName: string): string => `issuer:${issuerName}`;

/** How long after fetching a key set may still be used. */
function maxAgeOf(source: KeySourceName): number {
  return source === "pushed" ? PUSHED_JWKS_MAX_AGE_SECONDS : JWKS_MAX_STALE_SECONDS;
}

/** The record written for pushed keys, by the admin endpoint and by `gatepass jwks push`. */
export function pushedKeySet(issuerUrl: string, keys: PublicJwk[], now: number, push: { pushedBy?: string; retired?: RetiredKey[] } = {}): StoredKeySet {
  const set: StoredKeySet = { issuer_url: issuerUrl, source: "pushed", keys, fetched_at: now, fresh_until: now + PUSHED_JWKS_MAX_AGE_SECONDS };
  if (push.pushedBy !== undefined) set.pushed_by = push.pushedBy;
  if (push.retired && push.retired.length > 0) set.retired = push.retired;
  return set;
}

/**
 * How long keys removed by a push keep verifying. GitLab's rotation removes the old key at once, but
 * jobs that started before it carry tokens signed with that key; gatepass accepts a token for at most
 * the issuer's max token age (+ skew) after its iat, so no token issued before the push needs the old
 * key any longer than this.
 */
export function pushGraceSeconds(issuer: IssuerConfig): number {
  return issuer.max_token_age_seconds + CLOCK_SKEW_SECONDS;
}

/**
 * The retired keys after pushing `keys` over `previous`: its keys the push leaves out, until now +
 * grace, and its retired keys still verifying, until their own time (a later push never extends
 * one). A key pushed again is current, not retired. Grace 0 drops them all.
 */
export function retireKeys(previous: StoredKeySet | undefined, keys: readonly PublicJwk[], now: number, graceSeconds: number): RetiredKey[] {
  if (!previous || previous.source !== "pushed" || graceSeconds <= 0) return [];
  const current = new Set(keys.map((key) => key.kid));
  const retired = new Map<string, RetiredKey>();
  for (const old of previous.retired ?? []) {
    if (old.until > now && !current.has(old.key.kid)) retired.set(old.key.kid, old);
  }
  for (const key of previous.keys) {
    if (!current.has(key.kid)) retired.set(key.kid, { key, until: now + graceSeconds });
  }
  // Bounded like a key set: the latest to expire are kept.
  return [...retired.values()].sort((a, b) => b.until - a.until).slice(0, MAX_JWKS_KEYS);
}

/**
 * Pushed issuers whose last push is older than `warnAfterSeconds`, or that have no keys at all
 * (every token of theirs fails), with what an operator needs to act on it.
 */
export function stalePushedIssuers(statuses: readonly IssuerKeyStatus[], warnAfterSeconds: number) {
  return statuses
    .filter((status) => status.source === "pushed" && (status.age_seconds === null || status.age_seconds > warnAfterSeconds))
    .map((status) => ({
      issuer: status.name,
      age_seconds: status.age_seconds,
      last_push: status.fetched_at === null ? null : new Date(status.fetched_at * 1000).toISOString(),
      pushed_by: status.pushed_by ?? null,
      kids: status.kids,
    }));
}

/** Cache-Control max-age, honoured within [JWKS_MIN_FRESH_SECONDS, JWKS_MAX_FRESH_SECONDS]. */
export function freshSeconds(cacheControl: string | null): number {
  if (!cacheControl) return JWKS_DEFAULT_FRESH_SECONDS;
  if (/(^|[\s,])(no-store|no-cache)([\s,=]|$)/i.test(cacheControl)) return JWKS_MIN_FRESH_SECONDS;
  const match = /(?:^|[\s,])max-age\s*=\s*"?(\d{1,10})"?/i.exec(cacheControl);
  if (!match) return JWKS_DEFAULT_FRESH_SECONDS;
  return Math.min(JWKS_MAX_FRESH_SECONDS, Math.max(JWKS_MIN_FRESH_SECONDS, Number(match[1])));
}

/** A discovery `jwks_uri` naming another (often internal) host is moved to the issuer's own origin. */
export function jwksUrlOnIssuerOrigin(jwksUri: string, issuerUrl: string): string {
  const url = new URL(jwksUri);
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error(`jwks_uri ${jwksUri} is not an http(s) URL`);
  return `${new URL(issuerUrl).origin}${url.pathname}`;
}

/** A stored record for this issuer, or undefined when absent, corrupt or written for other config. */
export function parseStoredKeySet(text: string | null, issuer: IssuerConfig): StoredKeySet | undefined {
  if (text === null) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isPlainObject(value) || value.issuer_url !== issuer.url || value.source !== issuer.keys.source) return undefined;
  const jwksUri = issuer.keys.source === "jwks_uri" ? issuer.keys.jwks_uri : undefined;
  if (value.jwks_uri !== jwksUri) return undefined;
  const { fetched_at: fetchedAt, fresh_until: freshUntil } = value;
  if (typeof fetchedAt !== "number" || typeof freshUntil !== "number") return undefined;
  let keys: PublicJwk[];
  try {
    keys = usablePublicKeys(value).keys;
  } catch {
    return undefined;
  }
  if (keys.length === 0) return undefined;
  const set: StoredKeySet = { issuer_url: issuer.url, source: issuer.keys.source, keys, fetched_at: fetchedAt, fresh_until: freshUntil };
  if (jwksUri !== undefined) set.jwks_uri = jwksUri;
  if (typeof value.last_error === "string") set.last_error = value.last_error;
  if (typeof value.last_error_at === "number") set.last_error_at = value.last_error_at;
  if (set.source === "pushed") {
    if (typeof value.pushed_by === "string" && value.pushed_by.length <= MAX_PUSHED_BY_LENGTH) set.pushed_by = value.pushed_by;
    const retired = parseRetired(value.retired, keys);
    if (retired.length > 0) set.retired = retired;
  }
  return set;
}

/** Longest `pushed_by` kept from a record ("wrangler:" and an e-mail address fit). */
const MAX_PUSHED_BY_LENGTH = 256;

/** Retired keys of a stored record; an entry that is not a valid key with a time is dropped (fewer keys, never more). */
function parseRetired(value: unknown, current: readonly PublicJwk[]): RetiredKey[] {
  if (!Array.isArray(value)) return [];
  const kids = new Set(current.map((key) => key.kid));
  const retired: RetiredKey[] = [];
  for (const entry of value.slice(0, MAX_JWKS_KEYS)) {
    if (!isPlainObject(entry) || typeof entry.until !== "number") continue;
    let key: PublicJwk | undefined;
    try {
      key = usablePublicKeys({ keys: [entry.key] }).keys[0];
    } catch {
      continue;
    }
    if (!key || kids.has(key.kid)) continue;
    kids.add(key.kid);
    retired.push({ key, until: entry.until });
  }
  return retired;
}

/** One issuer's keys in this isolate. */
class IssuerKeys {
  set: StoredKeySet | undefined;
  private byKid = new Map<string, PublicJwk>();
  /** Retired keys (in byKid too): until when each verifies. */
  private retiredUntil = new Map<string, number>();
  private imported = new Map<string, Promise<CryptoKey>>();
  /** Imports that finished, for the synchronous warm path. */
  private ready = new Map<string, CryptoKey>();
  /** When a background reload is due (seconds). */
  recheckAt = 0;
  /** Failure backoff: no network before this (seconds). */
  networkAllowedAt = 0;
  /** Unknown-kid cooldown: no kid-driven reload before this (seconds). */
  kidReloadAllowedAt = 0;
  loading: Promise<void> | undefined;
  lastError: string | undefined;

  constructor(readonly identity: string) {}

  adopt(set: StoredKeySet): void {
    this.set = set;
    const retired = set.retired ?? [];
    this.byKid = new Map([...retired.map(({ key }) => [key.kid, key] as const), ...set.keys.map((key) => [key.kid, key] as const)]);
    this.retiredUntil = new Map(retired.map(({ key, until }) => [key.kid, until]));
    // New maps, not cleared ones: an import still running for the old set must not land in the new.
    this.imported = new Map();
    this.ready = new Map();
  }

  drop(): void {
    this.set = undefined;
    this.byKid = new Map();
    this.retiredUntil = new Map();
    this.imported = new Map();
    this.ready = new Map();
  }

  readyKey(kid: string, alg: string): CryptoKey | undefined {
    return this.ready.get(`${kid}\n${alg}`);
  }

  find(kid: string, now: number): PublicJwk | undefined {
    const until = this.retiredUntil.get(kid);
    return until === undefined || now < until ? this.byKid.get(kid) : undefined;
  }

  /**
   * When the next re-check is due: at `due`, or earlier when a retired key stops verifying before
   * then, so the warm path (which checks no times) never serves it past its end.
   */
  recheckBy(due: number, now: number): number {
    let at = due;
    for (const until of this.retiredUntil.values()) if (until > now && until < at) at = until;
    return at;
  }

  usable(now: number): boolean {
    return this.set !== undefined && now < this.set.fetched_at + maxAgeOf(this.set.source);
  }

  /** Imported once per key set, kid and alg; a warm verify reuses the CryptoKey. */
  cryptoKey(jwk: PublicJwk, alg: string): Promise<CryptoKey> {
    const cacheKey = `${jwk.kid}\n${alg}`;
    let key = this.imported.get(cacheKey);
    if (!key) {
      const ready = this.ready;
      key = (importJWK({ ...jwk, alg }, alg) as Promise<CryptoKey>).then(
        (imported) => {
          ready.set(cacheKey, imported);
          return imported;
        },
        (err: unknown) => {
          // Structurally valid but unusable (e.g. an EC point off its curve): no token verifies with it.
          throw new GatepassError("key_unknown", { description: "The issuer publishes a key for this kid that cannot be used.", cause: err });
        },
      );
      this.imported.set(cacheKey, key);
    }
    return key;
  }
}

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
        throw new GatepassError("jwks_unavailable", { headers: { "Retry-After": String(JWKS_FAILURE_BACKOFF_SECONDS) }, cause: state.lastError });
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
      throw new GatepassError("signature_invalid", { description: "The token's alg does not match the key its kid names." });
    }
    return state.cryptoKey(jwk, alg);
  }

  /**
   * At most one kid-driven reload per issuer per cooldown, never awaited. None while a reload runs
   * (it fetches the current set anyway) or when the keys in memory were fetched this very second (a
   * cold load just did): reloading would learn nothing. Pushed sets carry the pushing machine's clock,
   * so for them that test means nothing.
   */
  private reloadForKid(state: IssuerKeys, issuer: IssuerConfig, env: Env, defer: WaitUntil, kid: string, now: number): void {
    if (state.loading || now < state.kidReloadAllowedAt || (state.set !== undefined && state.set.source !== "pushed" && state.set.fetched_at >= now)) return;
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
          status.retired = (set?.retired ?? []).filter((r) => r.until > now).map((r) => ({ kid: r.key.kid, until: r.until }));
        }
        return status;
      }),
    );
  }

  /**
   * Stores a validated pushed key set (KV first, then this isolate's memory). Keys the stored set
   * had and this one lacks are retired for the issuer's grace time, unless `dropPrevious`.
   */
  async storePushed(issuer: IssuerConfig, keys: PublicJwk[], env: Env, push: { pushedBy: string; dropPrevious?: boolean }): Promise<StoredKeySet> {
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
  private async noteRefreshFailure(env: Env, issuer: IssuerConfig, state: IssuerKeys, last: StoredKeySet, error: string, now: number): Promise<void> {
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

  private async reload(state: IssuerKeys, issuer: IssuerConfig, env: Env, defer: WaitUntil, wantedKid?: string): Promise<void> {
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
      set = await this.fetchKeySet(issuer, env);
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

  private async fetchKeySet(issuer: IssuerConfig, env: Env): Promise<StoredKeySet> {
    const development = env.GATEPASS_ENV === "development";
    const common = { timeoutMs: this.fetchTimeoutMs, development };
    let jwksUrl: string;
    if (issuer.keys.source === "discovery") {
      const origin = new URL(issuer.url).origin;
      const discovery = await fetchIssuerJson(this.deps, `${issuer.url}/.well-known/openid-configuration`, { ...common, origin, maxBytes: MAX_DISCOVERY_BYTES });
      const jwksUri = isPlainObject(discovery.body) ? discovery.body.jwks_uri : undefined;
      if (typeof jwksUri !== "string") throw new Error("the discovery document has no jwks_uri");
      jwksUrl = jwksUrlOnIssuerOrigin(jwksUri, issuer.url);
    } else if (issuer.keys.source === "jwks_uri") {
      jwksUrl = issuer.keys.jwks_uri;
    } else {
      throw new Error("pushed keys are never fetched");
    }
    const jwks = await fetchIssuerJson(this.deps, jwksUrl, { ...common, origin: new URL(jwksUrl).origin, maxBytes: MAX_JWKS_BYTES });
    const { keys, dropped } = usablePublicKeys(jwks.body);
    if (dropped.length > 0) log("warn", "jwks_keys_dropped", { issuer: issuer.name, dropped });
    if (keys.length === 0) throw new Error(`${jwksUrl} holds no usable public keys`);
    const now = nowSeconds(this.deps);
    const set: StoredKeySet = { issuer_url: issuer.url, source: issuer.keys.source, keys, fetched_at: now, fresh_until: now + freshSeconds(jwks.headers.get("Cache-Control")) };
    if (issuer.keys.source === "jwks_uri") set.jwks_uri = jwksUrl;
    return set;
  }

  /** KV layer read; `read` is false when KV itself failed (then nothing is concluded from absence). */
  private async readStored(env: Env, issuer: IssuerConfig, state: IssuerKeys): Promise<{ set: StoredKeySet | undefined; read: boolean }> {
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

/**
 * Whether a stored record replaces the one in memory. Fetched sets: when newer (stamped by the
 * Worker's clock), or as new but different. Pushed sets: whenever different, because KV is their only
 * source and each push is stamped by the clock of whatever machine pushed it, so time order means
 * nothing (a newer key set pushed from a machine whose clock runs behind must still win).
 */
function supersedes(stored: StoredKeySet, current: StoredKeySet | undefined): boolean {
  if (!current) return true;
  if (stored.source === "pushed") return !sameKeySet(stored, current);
  if (stored.fetched_at !== current.fetched_at) return stored.fetched_at > current.fetched_at;
  return !sameKeySet(stored, current);
}

function sameKeySet(a: StoredKeySet, b: StoredKeySet): boolean {
  return a.fetched_at === b.fetched_at && JSON.stringify([a.keys, a.retired ?? []]) === JSON.stringify([b.keys, b.retired ?? []]);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// The key-set record stored in KV `JWKS` under `issuer:<name>` (docs/storage.md), and the pure rules
// about it: parsing a stored record, how long a set may be used, what a push retires, which issuers'
// pushed keys are stale, and whether a stored record replaces the one in memory. No I/O here: the
// layered cache that reads and writes these records is key-cache.ts.

import { isPlainObject } from "../encoding";
import { CLOCK_SKEW_SECONDS, JWKS_MAX_STALE_SECONDS, MAX_JWKS_KEYS, PUSHED_JWKS_MAX_AGE_SECONDS } from "../limits";
import type { IssuerConfig, KeySource } from "../types";
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
export function maxAgeOf(source: KeySourceName): number {
  return source === "pushed" ? PUSHED_JWKS_MAX_AGE_SECONDS : JWKS_MAX_STALE_SECONDS;
}

/** The record written for pushed keys, by the admin endpoint and by `gatepass jwks push`. */
export function pushedKeySet(
  issuerUrl: string,
  keys: PublicJwk[],
  now: number,
  push: { pushedBy?: string; retired?: RetiredKey[] } = {},
): StoredKeySet {
  const set: StoredKeySet = {
    issuer_url: issuerUrl,
    source: "pushed",
    keys,
    fetched_at: now,
    fresh_until: now + PUSHED_JWKS_MAX_AGE_SECONDS,
  };
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
export function retireKeys(
  previous: StoredKeySet | undefined,
  keys: readonly PublicJwk[],
  now: number,
  graceSeconds: number,
): RetiredKey[] {
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
    .filter(
      (status) => status.source === "pushed" && (status.age_seconds === null || status.age_seconds > warnAfterSeconds),
    )
    .map((status) => ({
      issuer: status.name,
      age_seconds: status.age_seconds,
      last_push: status.fetched_at === null ? null : new Date(status.fetched_at * 1000).toISOString(),
      pushed_by: status.pushed_by ?? null,
      kids: status.kids,
    }));
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
  const set: StoredKeySet = {
    issuer_url: issuer.url,
    source: issuer.keys.source,
    keys,
    fetched_at: fetchedAt,
    fresh_until: freshUntil,
  };
  if (jwksUri !== undefined) set.jwks_uri = jwksUri;
  if (typeof value.last_error === "string") set.last_error = value.last_error;
  if (typeof value.last_error_at === "number") set.last_error_at = value.last_error_at;
  if (set.source === "pushed") {
    if (typeof value.pushed_by === "string" && value.pushed_by.length <= MAX_PUSHED_BY_LENGTH)
      set.pushed_by = value.pushed_by;
    const retired = parseRetired(value.retired, keys);
    if (retired.length > 0) set.retired = retired;
  }
  return set;
}

/** Longest `pushed_by` kept from a record ("wrangler:" and an e-mail address fit). */
const MAX_PUSHED_BY_LENGTH = 256;

/**
 * Retired keys of a stored record; an entry that is not a valid key with a time is dropped (fewer keys, never more).
 */
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

/**
 * Whether a stored record replaces the one in memory. Fetched sets: when newer (stamped by the
 * Worker's clock), or as new but different. Pushed sets: whenever different, because KV is their only
 * source and each push is stamped by the clock of whatever machine pushed it, so time order means
 * nothing (a newer key set pushed from a machine whose clock runs behind must still win).
 */
export function supersedes(stored: StoredKeySet, current: StoredKeySet | undefined): boolean {
  if (!current) return true;
  if (stored.source === "pushed") return !sameKeySet(stored, current);
  if (stored.fetched_at !== current.fetched_at) return stored.fetched_at > current.fetched_at;
  return !sameKeySet(stored, current);
}

export function sameKeySet(a: StoredKeySet, b: StoredKeySet): boolean {
  return (
    a.fetched_at === b.fetched_at &&
    JSON.stringify([a.keys, a.retired ?? []]) === JSON.stringify([b.keys, b.retired ?? []])
  );
}

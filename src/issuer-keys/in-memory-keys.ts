// One issuer's keys as this isolate holds them: the current set (and its retired keys, each until its
// time), the CryptoKeys imported from it, and the timers of the layered cache (key-cache.ts), which
// decides when they are reloaded.

import { importJWK } from "jose";
import { GatepassError } from "../errors";
import type { PublicJwk } from "./key-set-validation";
import { maxAgeOf, type StoredKeySet } from "./stored-key-set";

/** One issuer's keys in this isolate. */
export class IssuerKeys {
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
    this.byKid = new Map([
      ...retired.map(({ key }) => [key.kid, key] as const),
      ...set.keys.map((key) => [key.kid, key] as const),
    ]);
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
          throw new GatepassError("key_unknown", {
            description: "The issuer publishes a key for this kid that cannot be used.",
            cause: err,
          });
        },
      );
      this.imported.set(cacheKey, key);
    }
    return key;
  }
}

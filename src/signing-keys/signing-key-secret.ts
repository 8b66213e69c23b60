// gatepass's own signing keys. The secret GATEPASS_SIGNING_KEYS holds private JWKs, each tagged with
// its rotation state (docs/issuer.md):
//
//   { "keys": [ { ...private JWK, "kid", "alg": "ES256"|"RS256", "status": "current"|"next"|"previous",
//                 "created_at": <unix s>, "retired_at": <unix s, previous only> } ] }
//
// - current: signs tokens of its alg (exactly one per alg; ES256 is required, RS256 optional);
// - next: published but never signs, so relying parties already know it when a rotation promotes it;
// - previous: published until PREVIOUS_KEY_PUBLISH_SECONDS after retired_at (longer than any token it
//   signed lives), then withheld; never signs.
// The secret is parsed and its keys imported once per isolate (Signer caches the KeyRing).

import { isPlainObject } from "../encoding";
import { GatepassError } from "../errors";
import { MAX_KID_LENGTH, MIN_RSA_BITS, PREVIOUS_KEY_PUBLISH_SECONDS } from "../limits";

export type SigningAlg = "ES256" | "RS256";
export type KeyStatus = "current" | "next" | "previous";

export const SIGNING_ALGS: readonly SigningAlg[] = ["ES256", "RS256"];

/** One entry of the secret: a private JWK plus gatepass's rotation fields. */
export interface StoredKey extends JsonWebKey {
  kid: string;
  alg: SigningAlg;
  status: KeyStatus;
  created_at: number;
  retired_at?: number;
}

export interface SigningKeySecret {
  keys: StoredKey[];
}

/** The only members that ever leave the Worker (RFC 7517/7518 public parameters). */
export interface PublicJwk {
  kty: "EC" | "RSA";
  kid: string;
  alg: SigningAlg;
  use: "sig";
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

const PRIVATE_MEMBERS: Record<SigningAlg, readonly string[]> = {
  ES256: ["d"],
  RS256: ["d", "p", "q", "dp", "dq", "qi"],
};

const KID_PATTERN = /^[A-Za-z0-9._-]+$/;
const B64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Validates the secret's JSON (pure; shared with the CLI). Throws an Error naming the first problem;
 * the Worker wraps it into signing_unavailable.
 */
export function parseSigningKeySecret(text: string): SigningKeySecret {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("GATEPASS_SIGNING_KEYS is not JSON");
  }
  if (!isPlainObject(value) || !Array.isArray(value.keys) || Object.keys(value).length !== 1) {
    throw new Error('GATEPASS_SIGNING_KEYS must be { "keys": [...] }');
  }
  const keys = value.keys.map((entry, index) => parseStoredKey(entry, index));
  const kids = new Set<string>();
  for (const key of keys) {
    if (kids.has(key.kid)) throw new Error(`duplicate kid ${key.kid}`);
    kids.add(key.kid);
  }
  for (const alg of SIGNING_ALGS) {
    const current = keys.filter((k) => k.alg === alg && k.status === "current").length;
    if (current > 1) throw new Error(`more than one current ${alg} key`);
    if (current === 0 && keys.some((k) => k.alg === alg)) throw new Error(`${alg} keys but no current ${alg} key`);
  }
  if (!keys.some((k) => k.alg === "ES256" && k.status === "current")) throw new Error("no current ES256 key");
  return { keys };
}

function parseStoredKey(entry: unknown, index: number): StoredKey {
  const where = `keys[${index}]`;
  if (!isPlainObject(entry)) throw new Error(`${where} is not an object`);
  const { kid, alg, status, created_at, retired_at } = entry;
  if (typeof kid !== "string" || kid.length === 0 || kid.length > MAX_KID_LENGTH || !KID_PATTERN.test(kid)) {
    throw new Error(`${where}.kid must be 1-${MAX_KID_LENGTH} characters of [A-Za-z0-9._-]`);
  }
  if (alg !== "ES256" && alg !== "RS256") throw new Error(`${where}.alg must be ES256 or RS256`);
  if (status !== "current" && status !== "next" && status !== "previous") {
    throw new Error(`${where}.status must be current, next or previous`);
  }
  if (!isUnixTime(created_at)) throw new Error(`${where}.created_at must be an integer (seconds since epoch)`);
  if (status === "previous" ? !isUnixTime(retired_at) : retired_at !== undefined) {
    throw new Error(`${where}.retired_at is required for previous keys and only for them`);
  }
  if (alg === "ES256") {
    if (entry.kty !== "EC" || entry.crv !== "P-256") throw new Error(`${where}: ES256 needs kty EC, crv P-256`);
    for (const member of ["x", "y"]) if (!isB64(entry[member])) throw new Error(`${where}.${member} missing`);
  } else {
    if (entry.kty !== "RSA") throw new Error(`${where}: RS256 needs kty RSA`);
    if (!isB64(entry.n) || !isB64(entry.e)) throw new Error(`${where}: n and e required`);
    if (modulusBits(entry.n) < MIN_RSA_BITS) throw new Error(`${where}: RSA modulus below ${MIN_RSA_BITS} bits`);
  }
  for (const member of PRIVATE_MEMBERS[alg]) {
    if (!isB64(entry[member])) throw new Error(`${where}.${member} missing: the secret holds private keys`);
  }
  return entry as unknown as StoredKey;
}

/** The public half of a stored key: an allowlist of members, so no private parameter can slip out. */
export function publicJwkOf(key: StoredKey): PublicJwk {
  const base = { kid: key.kid, alg: key.alg, use: "sig" as const };
  return key.alg === "ES256"
    ? { kty: "EC", crv: "P-256", x: key.x!, y: key.y!, ...base }
    : { kty: "RSA", n: key.n!, e: key.e!, ...base };
}

/** Whether a key belongs in the published JWKS at `now` (seconds). */
export function isPublished(key: Pick<StoredKey, "status" | "retired_at">, now: number): boolean {
  if (key.status !== "previous") return true;
  return now < (key.retired_at ?? 0) + PREVIOUS_KEY_PUBLISH_SECONDS;
}

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
}

const IMPORT_PARAMS: Record<SigningAlg, SubtleCryptoImportKeyAlgorithm> = {
  ES256: { name: "ECDSA", namedCurve: "P-256" },
  RS256: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
};

/** The imported key set of one isolate: current keys ready to sign, every key ready to publish. */
export class KeyRing {
  private constructor(
    private readonly stored: readonly StoredKey[],
    private readonly current: ReadonlyMap<SigningAlg, SigningKey>,
  ) {}

  static async import(secret: SigningKeySecret): Promise<KeyRing> {
    const current = new Map<SigningAlg, SigningKey>();
    for (const key of secret.keys) {
      if (key.status !== "current") continue;
      const { status: _s, created_at: _c, retired_at: _r, use: _u, key_ops: _k, ...jwk } = key;
      const privateKey = await crypto.subtle.importKey("jwk", jwk, IMPORT_PARAMS[key.alg], false, ["sign"]);
      current.set(key.alg, { kid: key.kid, alg: key.alg, privateKey });
    }
    return new KeyRing(secret.keys, current);
  }

  /** The key that signs `alg` tokens; signing_unavailable when the secret has none for that alg. */
  signingKey(alg: SigningAlg): SigningKey {
    const key = this.current.get(alg);
    if (!key) {
      throw new GatepassError("signing_unavailable", {
        description:
          `gatepass has no ${alg} signing key; an admin must add one to its signing key secret (gatepass ` +
          `keys add --alg ${alg}).`,
      });
    }
    return key;
  }

  /** Public keys to publish at `now` (seconds): current, next, and previous within their window. */
  published(now: number): PublicJwk[] {
    return this.stored.filter((key) => isPublished(key, now)).map(publicJwkOf);
  }

  algorithms(): SigningAlg[] {
    return SIGNING_ALGS.filter((alg) => this.current.has(alg));
  }

  /** For admin status: kids with their state. */
  describe(now: number): { kid: string; alg: SigningAlg; status: KeyStatus; published: boolean }[] {
    return this.stored.map((k) => ({ kid: k.kid, alg: k.alg, status: k.status, published: isPublished(k, now) }));
  }
}

function isUnixTime(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

function isB64(value: unknown): value is string {
  return typeof value === "string" && B64URL.test(value);
}

function modulusBits(n: string): number {
  // Leading zero octets are not allowed in JWK `n` (RFC 7518 §6.3.1.1), so length gives the size.
  return Math.floor((n.length * 6) / 8) * 8;
}

// Validation of an issuer's public JWKS. Pushed key sets must be valid as a whole (a bad set is
// refused and the old one stays); fetched key sets keep their usable keys and drop the rest, so one
// odd key at the issuer does not take verification down. Only the public members we use are kept.

import { GatepassError } from "../errors";
import { MAX_JWKS_KEYS, MAX_KID_LENGTH, MAX_RSA_BITS, MIN_RSA_BITS } from "../limits";
import { isSupportedAlgorithm, keyFitsAlgorithm } from "../verify/algorithms";
import { decodeBase64url, isPlainObject } from "../encoding";

/** A validated public verification key; exactly the members gatepass stores. */
export interface PublicJwk extends JsonWebKey {
  kid: string;
  kty: "RSA" | "EC" | "OKP";
}

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;
/** Coordinate length in bytes per curve. */
const CURVE_BYTES: Readonly<Record<string, number>> = { "P-256": 32, "P-384": 48, "P-521": 66, Ed25519: 32 };

/** Strict: every key must be valid. Throws GatepassError("jwks_invalid") naming the first problem. */
export function validatePublicJwks(input: unknown): { keys: PublicJwk[] } {
  const entries = keyEntries(input);
  if (entries.length === 0) throw invalid("the key set has no keys");
  const keys = entries.map((entry, index) => validatePublicJwk(entry, index));
  assertUniqueKids(keys);
  return { keys };
}

/** Lenient (for fetched sets): keeps the valid keys, reports why the others were dropped. */
export function usablePublicKeys(input: unknown): { keys: PublicJwk[]; dropped: string[] } {
  const keys: PublicJwk[] = [];
  const dropped: string[] = [];
  const seen = new Set<string>();
  keyEntries(input).forEach((entry, index) => {
    try {
      const key = validatePublicJwk(entry, index);
      if (seen.has(key.kid)) throw invalid(`kid "${key.kid}" appears more than once`);
      seen.add(key.kid);
      keys.push(key);
    } catch (err) {
      dropped.push(err instanceof GatepassError ? err.description : String(err));
    }
  });
  return { keys, dropped };
}

function keyEntries(input: unknown): unknown[] {
  if (!isPlainObject(input) || !Array.isArray(input.keys)) throw invalid('a JWKS is a JSON object with a "keys" array');
  if (input.keys.length > MAX_JWKS_KEYS)
    throw invalid(`the key set has ${input.keys.length} keys; at most ${MAX_JWKS_KEYS} are accepted`);
  return input.keys;
}

function validatePublicJwk(input: unknown, index = 0): PublicJwk {
  if (!isPlainObject(input)) throw invalid(`key #${index} is not a JSON object`);
  const { kid, kty, use, alg, key_ops: keyOps } = input;
  if (typeof kid !== "string" || kid.length === 0 || kid.length > MAX_KID_LENGTH) {
    throw invalid(`key #${index} needs a kid (a string of 1 to ${MAX_KID_LENGTH} characters)`);
  }
  const name = `key "${kid}"`;
  for (const member of PRIVATE_MEMBERS) {
    if (input[member] !== undefined)
      throw invalid(`${name} contains the private member "${member}"; push public keys only`);
  }
  if (use !== undefined && use !== "sig")
    throw invalid(`${name} has use "${String(use)}"; only "sig" keys verify tokens`);
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes("verify"))) {
    throw invalid(`${name} has key_ops without "verify"`);
  }
  if (alg !== undefined && (typeof alg !== "string" || !isSupportedAlgorithm(alg))) {
    throw invalid(`${name} has alg "${String(alg)}"; only asymmetric signature algorithms are accepted`);
  }

  let key: PublicJwk;
  if (kty === "RSA") key = rsaKey(input, kid, name);
  else if (kty === "EC" || kty === "OKP") key = curveKey(input, kty, kid, name);
  else throw invalid(`${name} has kty "${String(kty)}"; only RSA, EC and OKP public keys are accepted`);

  if (alg !== undefined) {
    if (!keyFitsAlgorithm(alg as string, key))
      throw invalid(`${name} has alg "${String(alg)}", which does not fit its key type`);
    key.alg = alg as string;
  }
  if (use !== undefined) key.use = "sig";
  return key;
}

function rsaKey(input: Record<string, unknown>, kid: string, name: string): PublicJwk {
  const n = typeof input.n === "string" ? decodeBase64url(input.n) : undefined;
  const e = typeof input.e === "string" ? decodeBase64url(input.e) : undefined;
  if (!n || !e) throw invalid(`${name} needs base64url members n and e`);
  const bits = bitLength(n);
  if (bits < MIN_RSA_BITS)
    throw invalid(`${name} is an RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are required`);
  if (bits > MAX_RSA_BITS) throw invalid(`${name} is an RSA key of ${bits} bits; at most ${MAX_RSA_BITS} are accepted`);
  const exponent = e.length <= 4 ? e.reduce((acc, byte) => acc * 256 + byte, 0) : 0;
  if (exponent < 3 || exponent % 2 === 0) throw invalid(`${name} has an unusable RSA exponent`);
  return { kty: "RSA", kid, n: input.n as string, e: input.e as string };
}

function curveKey(input: Record<string, unknown>, kty: "EC" | "OKP", kid: string, name: string): PublicJwk {
  const crv = input.crv;
  const okCurve = kty === "EC" ? crv === "P-256" || crv === "P-384" || crv === "P-521" : crv === "Ed25519";
  if (typeof crv !== "string" || !okCurve) throw invalid(`${name} has an unsupported curve "${String(crv)}"`);
  const size = CURVE_BYTES[crv]!;
  const x = typeof input.x === "string" ? decodeBase64url(input.x) : undefined;
  if (x?.length !== size) throw invalid(`${name} needs a ${size}-byte x coordinate`);
  if (kty === "OKP") return { kty, kid, crv, x: input.x as string };
  const y = typeof input.y === "string" ? decodeBase64url(input.y) : undefined;
  if (y?.length !== size) throw invalid(`${name} needs a ${size}-byte y coordinate`);
  return { kty, kid, crv, x: input.x as string, y: input.y as string };
}

function bitLength(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]!));
}

function assertUniqueKids(keys: readonly PublicJwk[]): void {
  const seen = new Set<string>();
  for (const { kid } of keys) {
    if (seen.has(kid)) throw invalid(`kid "${kid}" appears more than once`);
    seen.add(kid);
  }
}

function invalid(description: string): GatepassError {
  return new GatepassError("jwks_invalid", { description: `The key set is not a valid public JWKS: ${description}.` });
}

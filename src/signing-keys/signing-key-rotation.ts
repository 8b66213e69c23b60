// Producing and rotating the GATEPASS_SIGNING_KEYS secret (used by `gatepass keys` and by the
// ephemeral development keys). WebCrypto only, so it runs in Node and in workerd alike.
//
// Rotation, per algorithm: the *next* key (published since the last rotation) becomes *current*,
// the old current becomes *previous* (retired now), a fresh *next* is generated, and previous keys
// whose publication window has ended are dropped.

import { calculateJwkThumbprint } from "jose";
import { ISSUER_DOCUMENT_MAX_AGE_SECONDS } from "../limits";
import {
  isPublished,
  parseSigningKeySecret,
  SIGNING_ALGS,
  type KeyStatus,
  type SigningAlg,
  type SigningKeySecret,
  type StoredKey,
} from "./signing-key-secret";

const GENERATE_PARAMS: Record<SigningAlg, SubtleCryptoGenerateKeyAlgorithm> = {
  ES256: { name: "ECDSA", namedCurve: "P-256" },
  RS256: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
};

/** A fresh private key in the secret's shape; kid = RFC 7638 thumbprint. */
export async function generateStoredKey(alg: SigningAlg, status: KeyStatus, now: number): Promise<StoredKey> {
  const pair = (await crypto.subtle.generateKey(GENERATE_PARAMS[alg], true, ["sign", "verify"])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
  const { key_ops: _ops, ext: _ext, alg: _alg, ...members } = jwk;
  const kid = await calculateJwkThumbprint(members as Parameters<typeof calculateJwkThumbprint>[0]);
  return { ...members, kid, alg, status, created_at: now };
}

/** A new secret: for each alg, a current and a next key. */
export async function generateSecret(algs: readonly SigningAlg[], now: number): Promise<SigningKeySecret> {
  const keys: StoredKey[] = [];
  for (const alg of SIGNING_ALGS.filter((a) => algs.includes(a))) {
    keys.push(await generateStoredKey(alg, "current", now), await generateStoredKey(alg, "next", now));
  }
  return parseSigningKeySecret(JSON.stringify({ keys }));
}

export interface RotateOptions {
  /** Promote a next key even if relying parties may not have fetched it yet. */
  force?: boolean;
}

/** Rotates every algorithm present in the secret. Throws an Error explaining a refusal. */
export async function rotateSecret(
  secret: SigningKeySecret,
  now: number,
  options: RotateOptions = {},
): Promise<SigningKeySecret> {
  const keys: StoredKey[] = [];
  for (const alg of SIGNING_ALGS) {
    const ofAlg = secret.keys.filter((k) => k.alg === alg);
    if (ofAlg.length === 0) continue;
    const current = ofAlg.find((k) => k.status === "current")!;
    const next = ofAlg.find((k) => k.status === "next");
    if (!next) {
      throw new Error(
        `the secret has no next ${alg} key to promote (every secret \`gatepass keys\` writes has one): start from ` +
          `your complete copy of the live secret`,
      );
    }
    if (!options.force && now - next.created_at < ISSUER_DOCUMENT_MAX_AGE_SECONDS) {
      throw new Error(
        `the next ${alg} key was created less than ${ISSUER_DOCUMENT_MAX_AGE_SECONDS} s ago; relying parties may ` +
          `not know it yet (use --force to rotate anyway)`,
      );
    }
    keys.push({ ...current, status: "previous", retired_at: now });
    keys.push({ ...next, status: "current" });
    keys.push(await generateStoredKey(alg, "next", now));
    for (const other of ofAlg) {
      if (other !== current && other !== next && other.status === "previous" && isPublished(other, now))
        keys.push(other);
    }
  }
  return parseSigningKeySecret(JSON.stringify({ keys }));
}

/**
 * Adds a current and a next key for each algorithm the secret lacks, keeping every key it has: the
 * way to let a live secret sign another algorithm without replacing its signers. Throws for an
 * algorithm it already has (changing those keys is rotation's job).
 */
export async function addAlgorithms(
  secret: SigningKeySecret,
  algs: readonly SigningAlg[],
  now: number,
): Promise<SigningKeySecret> {
  const present = algs.filter((alg) => secret.keys.some((k) => k.alg === alg));
  if (present.length > 0)
    throw new Error(`the secret already has ${present.join(" and ")} keys; \`gatepass keys rotate\` replaces them`);
  const keys = [...secret.keys];
  for (const alg of algs)
    keys.push(await generateStoredKey(alg, "current", now), await generateStoredKey(alg, "next", now));
  return parseSigningKeySecret(JSON.stringify({ keys }));
}

export function serializeSecret(secret: SigningKeySecret): string {
  return JSON.stringify(secret);
}

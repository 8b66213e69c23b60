// The JWS algorithms gatepass verifies: asymmetric only (no HMAC, no "none"), each tied to the key
// type (and curve) it needs, so a key can never be used with an algorithm of another family.

interface AlgorithmSpec {
  kty: "RSA" | "EC" | "OKP";
  crv?: string;
  /** WebCrypto verify parameters (the hash of RSA keys is fixed when the key is imported for the alg). */
  verify: string | { name: string; saltLength?: number; hash?: string };
}

const ALGORITHMS: Readonly<Record<string, AlgorithmSpec>> = {
  RS256: { kty: "RSA", verify: "RSASSA-PKCS1-v1_5" },
  RS384: { kty: "RSA", verify: "RSASSA-PKCS1-v1_5" },
  RS512: { kty: "RSA", verify: "RSASSA-PKCS1-v1_5" },
  PS256: { kty: "RSA", verify: { name: "RSA-PSS", saltLength: 32 } },
  PS384: { kty: "RSA", verify: { name: "RSA-PSS", saltLength: 48 } },
  PS512: { kty: "RSA", verify: { name: "RSA-PSS", saltLength: 64 } },
  ES256: { kty: "EC", crv: "P-256", verify: { name: "ECDSA", hash: "SHA-256" } },
  ES384: { kty: "EC", crv: "P-384", verify: { name: "ECDSA", hash: "SHA-384" } },
  ES512: { kty: "EC", crv: "P-521", verify: { name: "ECDSA", hash: "SHA-512" } },
  EdDSA: { kty: "OKP", crv: "Ed25519", verify: "Ed25519" },
  Ed25519: { kty: "OKP", crv: "Ed25519", verify: "Ed25519" },
};

export function isSupportedAlgorithm(alg: string): boolean {
  return Object.hasOwn(ALGORITHMS, alg);
}

/** Whether a key of this type/curve may verify signatures made with `alg`. */
export function keyFitsAlgorithm(alg: string, key: { kty?: string; crv?: string }): boolean {
  const spec = Object.hasOwn(ALGORITHMS, alg) ? ALGORITHMS[alg] : undefined;
  if (!spec || spec.kty !== key.kty) return false;
  return spec.crv === undefined || spec.crv === key.crv;
}

/** WebCrypto verify parameters for a supported algorithm. */
export function verifyParams(alg: string): AlgorithmSpec["verify"] {
  const spec = Object.hasOwn(ALGORITHMS, alg) ? ALGORITHMS[alg] : undefined;
  if (!spec) throw new Error(`unsupported algorithm ${alg}`);
  return spec.verify;
}

// The token gatepass mints for one target: a compact JWS whose issuer is gatepass itself, so clouds
// trust gatepass once instead of every (possibly private) CI instance.

import { base64url } from "jose";
import { GatepassError } from "../errors";
import { MAX_SUBJECT_BYTES, MINTED_TOKEN_MAX_LIFETIME_SECONDS } from "../limits";
import type { Target, VerifiedIdentity } from "../types";
import type { KeyRing, SigningAlg } from "../signing-keys/signing-key-secret";

/**
 * CI claims copied into the minted token (for attribute mapping and cloud-side conditions).
 * Strings only; job_config's url and sha as job_config_url and job_config_sha. Left out: user_email
 * (personal data no cloud condition needs), array claims (groups_direct, user_identities: unbounded and
 * unusable in most cloud mappings), aud/iat/exp and target_audience (the CI token's own, meaningless for ours).
 */
export const COPIED_CI_CLAIMS = [
  "namespace_id",
  "namespace_path",
  "project_id",
  "project_path",
  "user_id",
  "user_login",
  "user_access_level",
  "pipeline_id",
  "pipeline_source",
  "job_id",
  "ref",
  "ref_type",
  "ref_path",
  "ref_protected",
  "sha",
  "runner_id",
  "runner_environment",
  "project_visibility",
  "ci_config_ref_uri",
  "ci_config_sha",
  "environment",
  "environment_protected",
  "deployment_tier",
  "environment_action",
  "job_project_id",
  "job_project_path",
  "job_namespace_id",
  "job_namespace_path",
  "job_source",
  "job_config_url",
  "job_config_sha",
] as const;

/** The claims gatepass sets itself in every minted token (what discovery lists before the copied ones). */
export const OWN_CLAIMS = [
  "iss",
  "sub",
  "aud",
  "iat",
  "nbf",
  "exp",
  "jti",
  "target",
  "rule",
  "source_issuer",
  "source_sub",
  "source_jti",
] as const;

/** Claims a copied CI claim never replaces, even when absent (source_sub). */
const RESERVED_CLAIMS: ReadonlySet<string> = new Set([...OWN_CLAIMS, "__proto__"]);

export interface MintedClaims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  /** The gatepass target and the policy rule that allowed it. */
  target: string;
  rule: string;
  /** The CI token's issuer (canonical URL), its sub and jti, for audit correlation. */
  source_issuer: string;
  source_sub?: string;
  source_jti?: string;
  [ciClaim: string]: string | number | undefined;
}

export interface MintedToken {
  token: string;
  claims: MintedClaims;
  kid: string;
}

export interface MintInput {
  issuer: string;
  target: Target;
  identity: VerifiedIdentity;
  rule: string;
  /** Seconds since epoch. */
  now: number;
  /** Desired lifetime; the result is further bounded by the CI token and the target (see mintedExpiry). */
  lifetimeSeconds: number;
  /** The CI claims to copy (the issuer's vocabulary: src/verify/issuer-kinds/); default GitLab's COPIED_CI_CLAIMS. */
  copied?: readonly string[];
}

/** `target:<name>` unless the target overrides it; at most MAX_SUBJECT_BYTES (GCP's google.subject limit). */
export function subjectFor(target: Target): string {
  const subject = target.subject ?? `target:${target.name}`;
  if (new TextEncoder().encode(subject).length > MAX_SUBJECT_BYTES) {
    throw new GatepassError("internal_error", {
      cause: new Error(`subject of target ${target.name} exceeds ${MAX_SUBJECT_BYTES} bytes`),
    });
  }
  return subject;
}

/**
 * exp = min(CI token exp, now + target max, now + gatepass max, now + requested), in whole seconds:
 * a CI token may carry a fractional exp (NumericDate allows it), but relying parties and
 * docs/issuer.md expect integers, and expires_in is derived from it.
 */
export function mintedExpiry(
  now: number,
  ciExpiresAt: number,
  targetMaxSeconds: number,
  lifetimeSeconds: number,
): number {
  return Math.floor(
    Math.min(ciExpiresAt, now + targetMaxSeconds, now + MINTED_TOKEN_MAX_LIFETIME_SECONDS, now + lifetimeSeconds),
  );
}

export function buildClaims(input: MintInput): MintedClaims {
  const { identity, target } = input;
  const now = Math.floor(input.now);
  const exp = mintedExpiry(now, identity.expiresAt, target.max_lifetime_seconds, input.lifetimeSeconds);
  if (exp <= now) throw new GatepassError("token_expired");
  const claims: MintedClaims = {
    iss: input.issuer,
    sub: subjectFor(target),
    aud: target.audience,
    iat: now,
    nbf: now,
    exp,
    jti: crypto.randomUUID(),
    target: target.name,
    rule: input.rule,
    source_issuer: identity.issuerUrl,
  };
  const source = identity.claims;
  if (typeof source.sub === "string") claims.source_sub = source.sub;
  if (typeof source.jti === "string") claims.source_jti = source.jti;
  for (const name of input.copied ?? COPIED_CI_CLAIMS) {
    // Never one of ours: a profile cannot make a CI claim overwrite iss, sub, aud, target or the times.
    if (Object.hasOwn(claims, name) || RESERVED_CLAIMS.has(name)) continue;
    const value = source[name];
    if (typeof value === "string") claims[name] = value;
  }
  return claims;
}

const SIGN_PARAMS: Record<SigningAlg, SubtleCryptoSignAlgorithm> = {
  ES256: { name: "ECDSA", hash: "SHA-256" },
  RS256: { name: "RSASSA-PKCS1-v1_5" },
};

/** Signs a compact JWS. WebCrypto's ECDSA output is already JOSE's r||s form. */
export async function signJwt(keys: KeyRing, alg: SigningAlg, claims: object): Promise<{ token: string; kid: string }> {
  const key = keys.signingKey(alg);
  const header = { alg, typ: "JWT", kid: key.kid };
  const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}`;
  const signature = await crypto.subtle.sign(SIGN_PARAMS[alg], key.privateKey, new TextEncoder().encode(input));
  return { token: `${input}.${base64url.encode(new Uint8Array(signature))}`, kid: key.kid };
}

export async function mintToken(keys: KeyRing, input: MintInput): Promise<MintedToken> {
  const claims = buildClaims(input);
  const { token, kid } = await signJwt(keys, input.target.signing_alg, claims);
  return { token, claims, kid };
}

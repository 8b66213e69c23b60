// parse → issuer → alg → key → signature → claims. Cheap checks that need no key run first, and an
// unknown issuer is refused before any key lookup, so attacker input never drives a network request.

import { isAcceptableIssuerUrl, type Env } from "../config";
import { nowSeconds, type Deps, type WaitUntil } from "../deps";
import { GatepassError, isGatepassError } from "../errors";
import { JWKS_FETCH_TIMEOUT_MS } from "../limits";
import type { IssuerConfig, VerifiedIdentity } from "../types";
import { checkCiClaims, normalizeClaims } from "./claim-normalisation";
import { verifyParams } from "./algorithms";
import { decoyKey } from "./decoy-keys";
import { hex } from "../encoding";
import { findIssuer } from "./issuer-lookup";
import { KeyCache } from "../issuer-keys/key-cache";
import type { IssuerKeyStatus, StoredKeySet } from "../issuer-keys/stored-key-set";
import type { PublicJwk } from "../issuer-keys/key-set-validation";
import { checkAlgorithm, checkPinnedKid, checkRegisteredClaims, parseToken } from "./token-checks";

export type { IssuerKeyStatus } from "../issuer-keys/stored-key-set";

export interface VerifierOptions {
  /** Per-request timeout for discovery and JWKS fetches (tests shorten it). */
  fetchTimeoutMs?: number;
}

export class Verifier {
  private readonly keys: KeyCache;

  constructor(
    private readonly deps: Deps,
    options: VerifierOptions = {},
  ) {
    this.keys = new KeyCache(deps, options.fetchTimeoutMs ?? JWKS_FETCH_TIMEOUT_MS);
  }

  /**
   * Throws GatepassError with a stable code. No network for unknown issuers. Warm path: zero KV reads, zero fetches.
   * A token whose signature did not verify is refused as token_unverified, whatever the reason, after
   * the same work (see refuseUnverified); only then do claims decide, with their own codes.
   */
  async verify(
    token: string,
    issuers: readonly IssuerConfig[],
    env: Env,
    waitUntil: WaitUntil,
  ): Promise<VerifiedIdentity> {
    // Refusals here (token_too_large, token_malformed, header_invalid) come from the token's bytes
    // alone, before its issuer is looked up: they tell nothing about configuration.
    const { header, payload, signature, signingInputLength } = parseToken(token);
    const signingInput = encoder.encode(token).subarray(0, signingInputLength);
    // The audit digest is computed alongside the signature check.
    const digest = crypto.subtle.digest("SHA-256", signingInput);

    let issuer: IssuerConfig;
    let key: CryptoKey;
    try {
      issuer = findIssuer(payload.iss, issuers);
      checkIssuerScheme(issuer, env);
      checkAlgorithm(header.alg, issuer);
      checkPinnedKid(header.kid, issuer);
      key =
        this.keys.warmKey(issuer, header.kid, header.alg) ??
        (await this.keys.key(issuer, header.kid, header.alg, env, waitUntil));
    } catch (err) {
      digest.catch(() => {});
      // jwks_unavailable stays itself: a retryable 503 that the CI template waits out (docs/errors.md).
      if (!isGatepassError(err) || err.code === "jwks_unavailable") throw err;
      // No key to check against: check against a decoy, so this costs what a configured issuer's forged token costs.
      const decoy = decoyKey(header.alg);
      await verifySignature(signingInput, signature, await decoy.key, decoy.alg);
      throw unverified(err);
    }
    if (!(await verifySignature(signingInput, signature, key, header.alg))) {
      digest.catch(() => {});
      throw unverified(new GatepassError("signature_invalid"));
    }

    const times = checkRegisteredClaims(payload, issuer, nowSeconds(this.deps));
    const claims = normalizeClaims(payload, issuer.kind);
    checkCiClaims(claims, issuer);
    return {
      issuer: issuer.name,
      issuerUrl: issuer.url,
      claims,
      tokenSha256: hex(await digest),
      issuedAt: times.issuedAt,
      expiresAt: times.expiresAt,
      legacy: times.legacy,
    };
  }

  /** Cron: refresh key sets that are stale or will be within JWKS_REFRESH_AHEAD_SECONDS. */
  refresh(issuers: readonly IssuerConfig[], env: Env): Promise<void> {
    return this.keys.refresh(issuers, env);
  }

  /** Admin status: per issuer { name, source, fetched_at, fresh_until, kids, last_error }. */
  keyStatus(issuers: readonly IssuerConfig[], env: Env): Promise<IssuerKeyStatus[]> {
    return this.keys.status(issuers, env);
  }

  /**
   * Admin push: stores an already validated key set for an issuer whose keys are pushed (who pushed it, and whether
   * removed keys retire or go at once).
   */
  storePushedKeys(
    issuer: IssuerConfig,
    keys: PublicJwk[],
    env: Env,
    push: { pushedBy: string; dropPrevious?: boolean } = { pushedBy: "admin" },
  ): Promise<StoredKeySet> {
    return this.keys.storePushed(issuer, keys, env, push);
  }
}

const encoder = new TextEncoder();

/**
 * The SHA-256 (hex) that stands in for a token in audit and logs: of its signing input (header.payload),
 * not of the whole text. An ECDSA signature has a twin (s and n - s) that verifies as well, so hashing
 * the signature would give one token two hashes; the signing input is what the issuer signed, once.
 * For text that is not a JWT, the hash of everything before its last ".".
 */
export async function tokenDigest(token: string): Promise<string> {
  const end = token.lastIndexOf(".");
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(end < 0 ? token : token.slice(0, end))));
}

/**
 * The wire answer for a token whose signature did not verify; the reason is logged and audited
 * (GatepassError.conceals).
 */
function unverified(reason: GatepassError): GatepassError {
  return new GatepassError("token_unverified", { conceals: reason });
}

/**
 * An http:// issuer (the local stand-in in the example policies) is refused outside development even
 * with pushed keys, which are never fetched: a deployed gatepass trusts https issuers only.
 */
function checkIssuerScheme(issuer: IssuerConfig, env: Env): void {
  if (issuer.url.startsWith("https://") || isAcceptableIssuerUrl(issuer.url, env.GATEPASS_ENV === "development"))
    return;
  throw new GatepassError("issuer_unknown", {
    description:
      `Issuer ${issuer.name} uses http://, which gatepass accepts only on loopback in local development; ` +
      `configure its https:// URL.`,
  });
}

/**
 * WebCrypto verify over the exact signing input. The key was imported (by jose, once) for this alg
 * and the alg was checked against the issuer and the key, so nothing here comes from the header.
 */
function verifySignature(
  signingInput: Uint8Array,
  signature: Uint8Array,
  key: CryptoKey,
  alg: string,
): Promise<boolean> {
  return crypto.subtle.verify(verifyParams(alg), key, signature, signingInput).catch(() => false);
}

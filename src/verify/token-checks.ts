// Pure checks on a compact JWT: its shape and header before any key is looked up, and its claims
// after the signature verified. Every refusal is a GatepassError with a stable code.

import { GatepassError } from "../errors";
import { CLOCK_SKEW_SECONDS, MAX_CACHED_HEADERS, MAX_KID_LENGTH, MAX_TOKEN_BYTES } from "../limits";
import type { IssuerConfig } from "../types";
import { isSupportedAlgorithm } from "./algorithms";
import { decodeBase64url, decodeBase64urlJson, isPlainObject } from "../encoding";
import { isBareHostIssuer } from "./issuer-lookup";

export interface TokenHeader {
  alg: string;
  kid: string;
}

export interface ParsedToken {
  header: TokenHeader;
  payload: Record<string, unknown>;
  signature: Uint8Array;
  /** Length of the signing input (header.payload); the token is ASCII, so chars = bytes. */
  signingInputLength: number;
}

/**
 * Header parameters that would make the token name its own key, key location, extra processing or
 * nesting. Keys come only from the configured issuer (RFC 8725 §3.10), so these are refused.
 */
const REFUSED_HEADER_PARAMETERS = ["crit", "jku", "x5u", "jwk", "x5c", "b64", "cty", "zip", "enc"] as const;

/** Splits and decodes the token; checks only what can be checked without knowing the issuer. */
export function parseToken(token: string): ParsedToken {
  if (token.length > MAX_TOKEN_BYTES) throw new GatepassError("token_too_large");
  const parts = token.split(".");
  if (parts.length !== 3 || parts[2]!.length === 0) throw new GatepassError("token_malformed");
  const header = headerOf(parts[0]!);
  const payload = decodeBase64urlJson(parts[1]!);
  const signature = decodeBase64url(parts[2]!);
  if (!isPlainObject(payload))
    throw new GatepassError("token_malformed", { description: "The token payload is not a base64url JSON object." });
  if (!signature) throw new GatepassError("token_malformed", { description: "The token signature is not base64url." });
  return { header, payload, signature, signingInputLength: parts[0]!.length + 1 + parts[1]!.length };
}

/**
 * Every token an issuer signs with one key has the same header segment, so checked headers are
 * remembered by their exact text (bounded; only headers that passed every check are kept).
 */
const checkedHeaders = new Map<string, TokenHeader>();

function headerOf(segment: string): TokenHeader {
  const known = checkedHeaders.get(segment);
  if (known) return known;
  const decoded = decodeBase64urlJson(segment);
  if (!isPlainObject(decoded))
    throw new GatepassError("token_malformed", { description: "The token header is not a base64url JSON object." });
  const header = checkHeader(decoded);
  if (checkedHeaders.size >= MAX_CACHED_HEADERS) checkedHeaders.clear();
  checkedHeaders.set(segment, header);
  return header;
}

function checkHeader(header: Record<string, unknown>): TokenHeader {
  for (const name of REFUSED_HEADER_PARAMETERS) {
    if (Object.hasOwn(header, name)) {
      throw new GatepassError("header_invalid", {
        description: `The token header carries "${name}", which gatepass does not accept.`,
      });
    }
  }
  const { alg, kid, typ } = header;
  if (typeof alg !== "string" || alg.length === 0)
    throw new GatepassError("token_malformed", { description: "The token header has no alg." });
  if (typ !== undefined && (typeof typ !== "string" || !/^(application\/)?jwt$/i.test(typ))) {
    throw new GatepassError("header_invalid", { description: "The token header typ must be JWT." });
  }
  if (typeof kid !== "string" || kid.length === 0 || kid.length > MAX_KID_LENGTH) {
    throw new GatepassError("header_invalid", {
      description: `The token header needs a kid of 1 to ${MAX_KID_LENGTH} characters.`,
    });
  }
  return Object.freeze({ alg, kid });
}

/** The algorithm must be one the issuer allows (never taken from the header alone), and asymmetric. */
export function checkAlgorithm(alg: string, issuer: IssuerConfig): void {
  if (!isSupportedAlgorithm(alg) || !issuer.algorithms.includes(alg)) {
    throw new GatepassError("algorithm_not_allowed", {
      description:
        `The token's alg is not allowed for issuer ${issuer.name} (allowed: ` + `${issuer.algorithms.join(", ")}).`,
    });
  }
}

/** A pinned issuer verifies only with its pinned kids; checked before any key lookup (no refetch for them). */
export function checkPinnedKid(kid: string, issuer: IssuerConfig): void {
  if (issuer.allowed_kids && !issuer.allowed_kids.includes(kid)) {
    throw new GatepassError("key_unknown", {
      description: `The token's kid is not one of the keys pinned for issuer ${issuer.name}.`,
    });
  }
}

export interface CheckedTimes {
  issuedAt: number;
  expiresAt: number;
  /** A legacy CI_JOB_JWT (bare-host iss, no aud), accepted because the issuer enables it. */
  legacy: boolean;
}

/** Registered-claim checks after the signature verified: iss spelling, aud, sub, exp/nbf/iat, max age. */
export function checkRegisteredClaims(
  payload: Record<string, unknown>,
  issuer: IssuerConfig,
  nowSeconds: number,
): CheckedTimes {
  const iss = payload.iss as string;
  const legacy = isBareHostIssuer(iss) && payload.aud === undefined;
  if (legacy) {
    // Only GitLab minted CI_JOB_JWT; a generic issuer's bare-host, aud-less token is nothing known.
    if (!issuer.accept_legacy_ci_job_jwt || issuer.kind !== "gitlab") throw new GatepassError("legacy_token_refused");
    const jobId = payload.job_id;
    if ((typeof jobId !== "string" && typeof jobId !== "number") || payload.sub !== `job_${jobId}`) {
      throw claimInvalid("sub", "A legacy CI_JOB_JWT must have sub job_<job_id>.");
    }
  } else {
    checkAudience(payload.aud, issuer);
  }
  if (typeof payload.sub !== "string" || payload.sub.length === 0)
    throw claimInvalid("sub", "The token has no sub claim (a string).");

  const exp = numericDate(payload, "exp", true)!;
  const iat = numericDate(payload, "iat", true)!;
  const nbf = numericDate(payload, "nbf", false);
  if (exp <= nowSeconds - CLOCK_SKEW_SECONDS) throw new GatepassError("token_expired");
  if (nbf !== undefined && nbf > nowSeconds + CLOCK_SKEW_SECONDS) throw new GatepassError("token_not_yet_valid");
  if (iat > nowSeconds + CLOCK_SKEW_SECONDS) throw new GatepassError("token_not_yet_valid");
  if (nowSeconds - iat > issuer.max_token_age_seconds + CLOCK_SKEW_SECONDS) {
    throw new GatepassError("token_too_old", {
      description:
        `The token was issued more than ${issuer.max_token_age_seconds} s ago; gatepass accepts younger ` +
        `tokens from issuer ${issuer.name}. Use the token early in the job.`,
    });
  }
  if (exp < iat) throw claimInvalid("exp", "The token expires before it was issued.");
  // Whole seconds from here on (NumericDate may be fractional); flooring exp only shortens the token's life.
  return { issuedAt: Math.floor(iat), expiresAt: Math.floor(exp), legacy };
}

function checkAudience(aud: unknown, issuer: IssuerConfig): void {
  let audiences: readonly unknown[];
  if (typeof aud === "string") audiences = [aud];
  else if (Array.isArray(aud)) audiences = aud;
  else if (aud === undefined)
    throw new GatepassError("audience_mismatch", {
      description: `The token has no aud; set it to one of the audiences issuer ${issuer.name} accepts.`,
    });
  else throw claimInvalid("aud", "The token's aud must be a string or an array of strings.");
  if (audiences.some((a) => typeof a !== "string"))
    throw claimInvalid("aud", "The token's aud must be a string or an array of strings.");
  if (!audiences.some((a) => issuer.audiences.includes(a as string))) {
    throw new GatepassError("audience_mismatch", {
      description:
        `The token's aud is not accepted for issuer ${issuer.name}; set the aud of the id_tokens entry ` +
        `to one of: ${issuer.audiences.join(", ")}.`,
    });
  }
  // Every other audience named is a service that holds the token and could replay it here.
  if (issuer.single_audience === true && audiences.length > 1) {
    throw new GatepassError("audience_multiple", {
      description:
        `The token's aud lists ${audiences.length} audiences; issuer ${issuer.name} accepts a token ` +
        `meant for gatepass alone. Give gatepass its own id_tokens entry whose aud is just ${issuer.audiences[0]}.`,
    });
  }
}

function numericDate(payload: Record<string, unknown>, claim: string, required: boolean): number | undefined {
  const value = payload[claim];
  if (value === undefined && !required) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value))
    throw claimInvalid(claim, `The token's ${claim} must be a number (seconds since the epoch).`);
  return value;
}

function claimInvalid(claim: string, description: string): GatepassError {
  return new GatepassError("claims_invalid", { description, details: { claim } });
}

// Claim normalisation: policies compare strings, so every scalar becomes the string GitLab would
// send ("true"/"false", ids as decimal strings). Type confusion is refused for the claims policies
// rely on; unknown claims that cannot be represented (objects, mixed arrays) are left out.

import { GatepassError } from "../errors";
import { MAX_CLAIM_ARRAY_LENGTH, MAX_CLAIM_VALUE_LENGTH } from "../limits";
import type { IssuerConfig, NormalizedClaims } from "../types";

/** GitLab claims (and registered claims) that are always scalars: an array or object there is refused. */
const SCALAR_CLAIMS = new Set([
  "iss", "sub", "jti", "exp", "iat", "nbf",
  "namespace_id", "namespace_path", "project_id", "project_path", "user_id", "user_login", "user_email",
  "pipeline_id", "pipeline_source", "job_id", "ref", "ref_type", "ref_protected", "ref_path", "sha",
  "runner_id", "runner_environment", "project_visibility", "ci_config_ref_uri", "ci_config_sha",
  "user_access_level", "environment", "environment_protected", "deployment_tier", "environment_action",
  "job_project_id", "job_project_path", "job_namespace_id", "job_namespace_path", "job_source",
]);
/** Claims that are lists of strings. */
const STRING_ARRAY_CLAIMS = new Set(["aud", "groups_direct"]);
/** What a GitLab issuer's tokens must carry to be CI job tokens rather than user-login ID tokens. */
const CI_CLAIMS = ["project_id", "pipeline_id", "job_id"] as const;

export function normalizeClaims(payload: Record<string, unknown>): NormalizedClaims {
  const claims: Record<string, string | readonly string[]> = {};
  for (const name of Object.keys(payload)) {
    const value = payload[name];
    // Most claims are strings already: the fast path.
    const normalized =
      typeof value === "string"
        ? checkLength(name, value)
        : SCALAR_CLAIMS.has(name)
          ? scalarClaim(name, value)
          : STRING_ARRAY_CLAIMS.has(name)
            ? listClaim(name, value)
            : otherClaim(name, value);
    if (normalized === undefined) continue;
    // A "__proto__" claim must stay a plain key, not replace the object's prototype.
    if (name === "__proto__") Object.defineProperty(claims, name, { value: normalized, enumerable: true });
    else claims[name] = normalized;
  }
  return Object.freeze(claims);
}

/** GitLab issuers: user-login ID tokens from the same issuer (same JWKS) are refused. */
export function checkCiClaims(claims: NormalizedClaims, issuer: IssuerConfig): void {
  if (issuer.kind !== "gitlab") return;
  const missing = CI_CLAIMS.filter((name) => {
    const value = claims[name];
    return typeof value !== "string" || value.length === 0;
  });
  if (missing.length > 0) {
    throw new GatepassError("not_a_ci_token", { details: { claim: missing.join(",") } });
  }
}

function scalarClaim(name: string, value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  const text = scalarText(value);
  if (text === undefined) throw invalid(name, `The token's ${name} claim must be a string, a boolean or a number that is exact (integers below 2^53).`);
  return checkLength(name, text);
}

/** A string-list claim that is not a string (strings took the fast path): a list of strings or nothing. */
function listClaim(name: string, value: unknown): readonly string[] | undefined {
  if (value === null || value === undefined) return undefined;
  if (!Array.isArray(value) || value.length > MAX_CLAIM_ARRAY_LENGTH || !value.every((item) => typeof item === "string")) {
    throw invalid(name, `The token's ${name} claim must be a list of at most ${MAX_CLAIM_ARRAY_LENGTH} strings.`);
  }
  return Object.freeze(value.map((item: string) => checkLength(name, item)));
}

/** Claims gatepass does not know: scalars and lists of scalars are kept, anything else is left out. */
function otherClaim(name: string, value: unknown): string | readonly string[] | undefined {
  if (Array.isArray(value)) {
    if (value.length > MAX_CLAIM_ARRAY_LENGTH) throw invalid(name, `The token's ${name} claim has more than ${MAX_CLAIM_ARRAY_LENGTH} items.`);
    const items = value.map(scalarText);
    if (items.some((item) => item === undefined)) return undefined;
    return Object.freeze(items.map((item) => checkLength(name, item!)));
  }
  const text = scalarText(value);
  return text === undefined ? undefined : checkLength(name, text);
}

/** Left out (unknown claims) or refused (known ones): numbers that cannot be represented exactly. */
function scalarText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number" && Number.isFinite(value) && !isImpreciseNumber(value)) return String(value);
  return undefined;
}

/** An integer past 2^53 was rounded by JSON.parse: two different ids could compare equal as strings. */
function isImpreciseNumber(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value);
}

function checkLength(name: string, text: string): string {
  if (text.length > MAX_CLAIM_VALUE_LENGTH) throw invalid(name, `The token's ${name} claim is longer than ${MAX_CLAIM_VALUE_LENGTH} characters.`);
  return text;
}

function invalid(claim: string, description: string): GatepassError {
  return new GatepassError("claims_invalid", { description, details: { claim } });
}

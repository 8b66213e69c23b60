// Claim normalisation: policies compare strings, so every scalar becomes the string GitLab would
// send ("true"/"false", ids as decimal strings).
//
// Claims gatepass reads (the GitLab claims rules may name, the audit columns and the claims copied into
// minted tokens are all among GITLAB_TOKEN_CLAIMS) are typed and bounded: a wrong type or a value over
// the limits refuses the token (claims_invalid). Any other claim is kept when it is a scalar or a list
// of scalars within the limits and left out otherwise (objects, long values, long lists): gatepass does
// not read it, so it must not cost the job its token, and a rule naming it never matches.

import { GatepassError } from "../errors";
import { MAX_CLAIM_ARRAY_LENGTH, MAX_CLAIM_VALUE_LENGTH } from "../limits";
import type { ClaimType, IssuerConfig, NormalizedClaims } from "../types";
import { GITHUB_CI_CLAIMS, GITHUB_TOKEN_CLAIMS } from "./issuer-kinds/github-actions";

/**
 * Every claim GitLab puts in CI ID tokens, with how it is read. Sources (gitlab-org/gitlab):
 * lib/gitlab/ci/jwt.rb (jti, iat, nbf, exp, sub; pipeline_id ... environment_action, groups_direct;
 * job_project_* and job_namespace_*, 18.3+), lib/json_web_token/user_project_token_claims.rb
 * (project_*, namespace_*, user_*), lib/gitlab/ci/jwt_v2.rb (iss, aud, target_audience, runner_id,
 * runner_environment, sha, project_visibility, user_identities; ci_config_ref_uri and ci_config_sha
 * through its ClaimMapper), and the documented job_source and job_config (18.9).
 */
export const GITLAB_TOKEN_CLAIMS: Readonly<Record<string, ClaimType>> = {
  iss: "scalar",
  sub: "scalar",
  aud: "list",
  jti: "scalar",
  iat: "scalar",
  nbf: "scalar",
  exp: "scalar",
  target_audience: "scalar",
  namespace_id: "id",
  namespace_path: "scalar",
  project_id: "id",
  project_path: "scalar",
  project_visibility: "scalar",
  user_id: "id",
  user_login: "scalar",
  user_email: "scalar",
  user_access_level: "scalar",
  user_identities: "ignored",
  groups_direct: "list",
  job_project_id: "id",
  job_project_path: "scalar",
  job_namespace_id: "id",
  job_namespace_path: "scalar",
  pipeline_id: "id",
  pipeline_source: "scalar",
  job_id: "id",
  job_source: "scalar",
  job_config: "job_config",
  ref: "scalar",
  ref_type: "scalar",
  ref_path: "scalar",
  ref_protected: "scalar",
  sha: "scalar",
  runner_id: "id",
  runner_environment: "scalar",
  ci_config_ref_uri: "scalar",
  ci_config_sha: "scalar",
  environment: "scalar",
  environment_protected: "scalar",
  deployment_tier: "scalar",
  environment_action: "scalar",
  // job_config, flattened (a token carrying these names itself is read the same way).
  job_config_url: "scalar",
  job_config_sha: "scalar",
};

/** What a GitLab issuer's tokens must carry to be CI job tokens rather than user-login ID tokens. */
const CI_CLAIMS = ["project_id", "pipeline_id", "job_id"] as const;
/** GitLab sends user_id "" for jobs without a user (e.g. some scheduled and API-triggered pipelines). */
const MAY_BE_EMPTY = new Set(["user_id"]);
/** Decimal, no sign, no leading zero: one id has one spelling (use limits count per job_id). */
const DECIMAL_ID = /^(0|[1-9][0-9]{0,19})$/;

type Normalized = string | readonly string[];

export function normalizeClaims(
  payload: Record<string, unknown>,
  kind: IssuerConfig["kind"] = "gitlab",
): NormalizedClaims {
  const claims: Record<string, Normalized> = {};
  const set = (name: string, value: Normalized) => {
    // A "__proto__" claim must stay a plain key, not replace the object's prototype.
    if (name === "__proto__") Object.defineProperty(claims, name, { value, enumerable: true, configurable: true });
    else claims[name] = value;
  };
  // GitHub's claims for kind github; GitLab's otherwise (a generic issuer's tokens have always been read so).
  const known = kind === "github" ? GITHUB_TOKEN_CLAIMS : GITLAB_TOKEN_CLAIMS;
  const strictIds = kind !== "generic";
  for (const name of Object.keys(payload)) {
    const value = payload[name];
    const type = Object.hasOwn(known, name) ? known[name]! : undefined;
    if (type === undefined) {
      const kept = otherClaim(value);
      if (kept !== undefined) set(name, kept);
      continue;
    }
    if (value === null || value === undefined || type === "ignored") continue; // GitLab sends null for absent values
    if (type === "job_config") {
      for (const [member, read] of Object.entries(jobConfig(value))) {
        if (Object.hasOwn(payload, member)) throw invalid(member, `The token carries both job_config and ${member}.`);
        set(member, read);
      }
      continue;
    }
    set(
      name,
      type === "list"
        ? listClaim(name, value)
        : type === "id" && strictIds
          ? idClaim(name, value)
          : scalarClaim(name, value),
    );
  }
  return Object.freeze(claims);
}

/**
 * GitLab issuers: user-login ID tokens from the same issuer (same JWKS) are refused. GitHub issuers: tokens must name
 * a repository and a run.
 */
export function checkCiClaims(claims: NormalizedClaims, issuer: IssuerConfig): void {
  if (issuer.kind === "generic") return;
  const required: readonly string[] = issuer.kind === "github" ? GITHUB_CI_CLAIMS : CI_CLAIMS;
  const missing = required.filter((name) => {
    const value = claims[name];
    return typeof value !== "string" || value.length === 0;
  });
  if (missing.length > 0) {
    const description =
      issuer.kind === "github"
        ? `The token is not a GitHub Actions job token (${required.join(", ")} are required); request it from ` +
          `ACTIONS_ID_TOKEN_REQUEST_URL in a workflow job.`
        : undefined;
    throw new GatepassError("not_a_ci_token", {
      ...(description ? { description } : {}),
      details: { claim: missing.join(",") },
    });
  }
}

function scalarClaim(name: string, value: unknown): string {
  const text = scalarText(value);
  if (text === undefined)
    throw invalid(
      name,
      `The token's ${name} claim must be a string, a boolean or a number that is exact (integers below 2^53).`,
    );
  return checkLength(name, text);
}

/** `job_id: false` must not become "false" and pass for an id. */
function idClaim(name: string, value: unknown): string {
  const text = typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? String(value) : value;
  if (typeof text === "string" && (DECIMAL_ID.test(text) || (text === "" && MAY_BE_EMPTY.has(name)))) return text;
  throw invalid(name, `The token's ${name} claim must be a decimal id: digits in a string, or a whole number.`);
}

function listClaim(name: string, value: unknown): Normalized {
  if (typeof value === "string") return checkLength(name, value); // aud is often a single string
  if (
    !Array.isArray(value) ||
    value.length > MAX_CLAIM_ARRAY_LENGTH ||
    !value.every((item) => typeof item === "string")
  ) {
    throw invalid(name, `The token's ${name} claim must be a list of at most ${MAX_CLAIM_ARRAY_LENGTH} strings.`);
  }
  return Object.freeze(value.map((item: string) => checkLength(name, item)));
}

/** `{ url, sha }` → job_config_url, job_config_sha (each when present); other members are not read. */
function jobConfig(value: unknown): Record<string, string> {
  if (typeof value !== "object" || Array.isArray(value) || value === null)
    throw invalid("job_config", "The token's job_config claim must be an object with url and sha.");
  const read: Record<string, string> = {};
  for (const member of ["url", "sha"] as const) {
    const inner = (value as Record<string, unknown>)[member];
    if (inner !== undefined && inner !== null)
      read[`job_config_${member}`] = scalarClaim(`job_config_${member}`, inner);
  }
  return read;
}

/**
 * Claims gatepass does not read: scalars and lists of scalars within the limits are kept; anything else is left out.
 */
function otherClaim(value: unknown): Normalized | undefined {
  if (Array.isArray(value)) {
    if (value.length > MAX_CLAIM_ARRAY_LENGTH) return undefined;
    const items = value.map(scalarText);
    if (items.some((item) => item === undefined || item.length > MAX_CLAIM_VALUE_LENGTH)) return undefined;
    return Object.freeze(items as string[]);
  }
  const text = scalarText(value);
  return text === undefined || text.length > MAX_CLAIM_VALUE_LENGTH ? undefined : text;
}

/** Left out (unknown claims) or refused (known ones): numbers that cannot be represented exactly. */
function scalarText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number" && Number.isFinite(value) && !isImpreciseNumber(value)) return String(value);
  return undefined;
}

/** An integer past 2^53 was rounded by JSON.parse: two different ids could compare equal as strings. */
function isImpreciseNumber(value: number): boolean {
  return Number.isInteger(value) && !Number.isSafeInteger(value);
}

function checkLength(name: string, text: string): string {
  if (text.length > MAX_CLAIM_VALUE_LENGTH)
    throw invalid(name, `The token's ${name} claim is longer than ${MAX_CLAIM_VALUE_LENGTH} characters.`);
  return text;
}

function invalid(claim: string, description: string): GatepassError {
  return new GatepassError("claims_invalid", { description, details: { claim } });
}

// The domain shapes that cross module boundaries: issuer config, verified identity, targets,
// rules, the policy snapshot and decisions. Parsing/validation lives in policy/policy-schema.ts
// (each section in policy/issuer-schema.ts, target-schema.ts, rule-schema.ts).

// ---- issuers -------------------------------------------------------------------------------

export type KeySource = { source: "discovery" } | { source: "jwks_uri"; jwks_uri: string } | { source: "pushed" };

export interface IssuerConfig {
  /** Stable name used in rules, KV keys and audit ("corp-gitlab"). */
  name: string;
  /** Canonical issuer URL: scheme, lower-case host, optional path, no trailing slash. */
  url: string;
  /**
   * "gitlab" and "github" know their CI's claims (rules may name only those, tokens must carry the CI
   * claims: src/verify/issuer-kinds/); "generic" accepts any claim, read through `profile` when given.
   */
  kind: "gitlab" | "github" | "generic";
  /** kind generic: which claims scope, protect and get copied (src/verify/issuer-kinds/ci-profiles.ts). */
  profile?: IssuerProfile;
  /** Other spellings of `iss` accepted for this issuer, canonicalised like `url`. */
  aliases: string[];
  /** `aud` must contain at least one of these. */
  audiences: string[];
  /** Allowed JWS algorithms (asymmetric only); default ["RS256"]. */
  algorithms: string[];
  keys: KeySource;
  /** When set, only these kids verify (pin the CI signing key). */
  allowed_kids?: string[];
  max_token_age_seconds: number;
  /** Accept legacy CI_JOB_JWT (v1) tokens: bare-host iss, no aud. Off by default. */
  accept_legacy_ci_job_jwt: boolean;
  /**
   * Refuse tokens whose aud lists more than one audience (any other service named could replay them).
   * Policy files default to true; absent only in snapshots pushed before the option existed, which keep
   * accepting such tokens until pushed again.
   */
  single_audience?: boolean;
}

/** How lint, explain and minting read a `kind: generic` issuer's claims; stored expanded. */
export interface IssuerProfile {
  /** The shipped profile it was expanded from (buildkite, circleci); absent when written inline. */
  name?: string;
  /** The claim that identifies the job's project by an id that is never reused. */
  project_id: string;
  /** The claim that identifies the project's owner (organization) by id. */
  owner_id?: string;
  /** The project's path or name (reusable after a rename or deletion). */
  project_path?: string;
  /** The owner's path or name. */
  owner_path?: string;
  /** The claim and value that say the job runs on a protected ref. */
  protected_ref?: { claim: string; value: string };
  /** A claim whose values mark runs of untrusted code or commands (e.g. a rerun with SSH). */
  untrusted?: { claim: string; values: string[] };
  /** Claims copied into minted tokens (strings only). */
  copy: string[];
}

// ---- verified identity ---------------------------------------------------------------------

/** How a CI token claim is read (src/verify/claim-normalisation.ts, src/verify/issuer-kinds/). */
export type ClaimType =
  /** A scalar: a string, or a boolean or exact number spelled as a string. */
  | "scalar"
  /** A GitLab id: decimal digits, as a string or a whole number (kind: gitlab; a scalar otherwise). */
  | "id"
  /** A list of strings. */
  | "list"
  /** GitLab 18.9+: `{ url, sha }` of the job's pipeline configuration, read as job_config_url and job_config_sha. */
  | "job_config"
  /** Sent by GitLab but never read (a list of objects): always left out, whatever its size. */
  | "ignored";

/** Claims after normalisation: scalars as strings ("true"/"false", ids as decimal strings), string arrays kept. */
export type NormalizedClaims = Readonly<Record<string, string | readonly string[]>>;

export interface VerifiedIdentity {
  /** Name of the configured issuer that signed the token. */
  issuer: string;
  /** Canonical URL of that issuer. */
  issuerUrl: string;
  claims: NormalizedClaims;
  /**
   * SHA-256 (hex) of the token's signing input (header.payload; see tokenDigest): what audit and logs carry instead of
   * the token.
   */
  tokenSha256: string;
  /** Seconds since epoch. */
  issuedAt: number;
  expiresAt: number;
  /** True for a legacy CI_JOB_JWT token. */
  legacy: boolean;
}

// ---- targets ---------------------------------------------------------------------------------

interface TargetBase {
  name: string;
  description?: string;
  /** Privileged targets must only be reachable from protected refs outside merge-request pipelines (lint). */
  privileged: boolean;
  /** Minted token `sub`; default `target:<name>`. At most 127 bytes. */
  subject?: string;
  /** Algorithm of the minted token; default ES256. */
  signing_alg: "ES256" | "RS256";
  /** Upper bound for the credential's lifetime, seconds. */
  max_lifetime_seconds: number;
}

export interface GcpTarget extends TargetBase {
  type: "gcp";
  /** projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER */
  workload_identity_provider: string;
  service_account?: string;
  /** Scopes a job may request; the first is the default. */
  scopes: string[];
  /** Audiences a job may ask a Google ID token for (exact match); absent: no ID tokens. Needs service_account. */
  id_token_audiences?: string[];
  /** Minted token aud; default `//iam.googleapis.com/<workload_identity_provider>`. */
  audience: string;
}

export interface AwsTarget extends TargetBase {
  type: "aws";
  role_arn: string;
  region: string;
  /** Inline session policy (JSON text), optional. */
  session_policy?: string;
  /** Minted token aud; default "sts.amazonaws.com". */
  audience: string;
}

export interface AzureTarget extends TargetBase {
  type: "azure";
  tenant_id: string;
  client_id: string;
  /** e.g. "https://management.azure.com/.default" */
  scope: string;
  /** Minted token aud; default "api://AzureADTokenExchange". */
  audience: string;
}

export interface VaultTarget extends TargetBase {
  type: "vault";
  address: string;
  mount: string;
  role: string;
  /** Vault Enterprise / HCP namespace of the mount (sent as X-Vault-Namespace); none: the root namespace. */
  namespace?: string;
  /** Minted token aud; must be in the Vault role's bound_audiences. */
  audience: string;
}

export interface OidcTarget extends TargetBase {
  type: "oidc";
  audience: string;
}

export type Target = GcpTarget | AwsTarget | AzureTarget | VaultTarget | OidcTarget;
export type TargetType = Target["type"];

// ---- rules -----------------------------------------------------------------------------------

/** A condition on one claim, as written: exact/glob string, any-of list, or negation of either. */
export type ConditionSpec = string | string[] | { not: string | string[] };

export interface RuleSpec {
  name: string;
  issuer: string;
  description?: string;
  match: Record<string, ConditionSpec>;
  allow: string[];
  /** Explicit acknowledgements that silence lint refusals. */
  acknowledge?: {
    /** The rule has no project or namespace scope on purpose. */
    broad?: boolean;
    /** The rule lets privileged targets be used from unprotected refs or merge-request pipelines. */
    unprotected?: boolean;
    /** The rule lets privileged targets be used from child pipelines (on protected refs). */
    child_pipelines?: boolean;
    /** The rule lets privileged targets be reached by project or namespace path alone (no id). */
    path_scope?: boolean;
  };
  /** Optional: at most this many credentials per job and target. */
  max_uses_per_job?: number;
}

// ---- the policy snapshot (what KV holds) ---------------------------------------------------

export interface PolicySnapshot {
  format: 1;
  /** Content hash of the canonical snapshot body (hex SHA-256): the version. */
  version: string;
  /** Hash of the source files as read (file names and bytes). */
  source_digest: string;
  created_at: string;
  issuers: IssuerConfig[];
  targets: Target[];
  rules: RuleSpec[];
}

// ---- decisions -------------------------------------------------------------------------------

export interface Grant {
  target: string;
  rule: string;
}

export type Decision = { allowed: true; target: string; rule: string } | { allowed: false; target: string };

/** Why a rule did not match, in terms of the token's own claims only. */
export interface ConditionFailure {
  claim: string;
  /** The token's value (or null when the claim is missing). Never the rule's pattern. */
  actual: string | readonly string[] | null;
}

/** One rule that could grant a target, and whether this token satisfies it. */
export interface RuleExplanation {
  rule: string;
  matched: boolean;
  /** Empty when matched. */
  failures: ConditionFailure[];
}

/** Why a token may or may not use one target: the token issuer's rules that allow the target. */
export interface TargetExplanation {
  target: string;
  allowed: boolean;
  /** The granting rule when allowed (the first matching one in policy order). */
  rule?: string;
  rules: RuleExplanation[];
  /** How many further rules allow the target but are not listed (the list is capped). */
  omitted?: number;
}

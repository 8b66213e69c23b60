// One error type for every refusal. Each code is stable (clients and tests match on it), maps to
// one HTTP status and one RFC 6749-style `error`, and carries a default sentence that tells a CI
// author what to change. Internal detail (`cause`, upstream bodies) never reaches the wire.

export type OAuthError =
  | "invalid_request"
  | "invalid_token"
  | "invalid_grant"
  | "invalid_scope"
  | "invalid_target"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "access_denied"
  | "not_found"
  | "rate_limited"
  | "server_error"
  | "temporarily_unavailable";

interface CodeSpec {
  status: number;
  error: OAuthError;
  description: string;
}

export const ERROR_CODES = {
  // --- request shape ---
  request_invalid: {
    status: 400,
    error: "invalid_request",
    description: "The request is malformed; check the parameters against the README.",
  },
  request_too_large: {
    status: 413,
    error: "invalid_request",
    description: "The request body is larger than gatepass accepts.",
  },
  token_missing: {
    status: 401,
    error: "invalid_token",
    description:
      "Send the CI job's ID token as 'Authorization: Bearer <token>' (declare it under id_tokens: in .gitlab-ci.yml).",
  },
  not_found: { status: 404, error: "not_found", description: "No such endpoint." },
  method_not_allowed: {
    status: 405,
    error: "invalid_request",
    description: "This endpoint does not accept that HTTP method.",
  },

  // --- token verification ---
  // Until a signature verifies, every refusal answers token_unverified: whether the token's issuer is
  // configured, and how, must not show. The refusal it stands in for (issuer_unknown, algorithm_not_allowed,
  // key_unknown, signature_invalid) goes to the request's log line and audit row only.
  token_unverified: {
    status: 401,
    error: "invalid_token",
    description:
      "gatepass could not verify the token's signature: send the CI job's own ID token (id_tokens: in " +
      ".gitlab-ci.yml), unchanged, from a GitLab instance gatepass trusts. An admin finds the exact reason under " +
      "this request_id in gatepass's log and audit.",
  },
  token_malformed: {
    status: 401,
    error: "invalid_token",
    description: "The token is not a well-formed JWT (three base64url segments with a JSON header and payload).",
  },
  token_too_large: { status: 401, error: "invalid_token", description: "The token is larger than gatepass accepts." },
  algorithm_not_allowed: {
    status: 401,
    error: "invalid_token",
    description: "The token's signing algorithm is not allowed for its issuer.",
  },
  header_invalid: {
    status: 401,
    error: "invalid_token",
    description: "The token header carries unsupported parameters (crit, jku, x5u, jwk, or a bad kid).",
  },
  issuer_unknown: {
    status: 401,
    error: "invalid_token",
    description: "The token's issuer is not configured in gatepass; ask an admin to add it to policies/issuers.yaml.",
  },
  key_unknown: {
    status: 401,
    error: "invalid_token",
    description:
      "The token was signed with a key its issuer does not publish (or that is not allowed); the issuer's keys may " +
      "have rotated.",
  },
  signature_invalid: { status: 401, error: "invalid_token", description: "The token's signature does not verify." },
  audience_mismatch: {
    status: 401,
    error: "invalid_token",
    description:
      "The token's aud is not accepted for its issuer; set the aud of the id_tokens entry to the audience gatepass " +
      "expects.",
  },
  audience_multiple: {
    status: 401,
    error: "invalid_token",
    description:
      "The token's aud lists more than one audience, and its issuer accepts tokens meant for gatepass alone; give " +
      "gatepass its own id_tokens entry with a single aud.",
  },
  token_expired: {
    status: 401,
    error: "invalid_token",
    description: "The token has expired; request a fresh one in the job.",
  },
  token_not_yet_valid: {
    status: 401,
    error: "invalid_token",
    description: "The token is not valid yet (nbf or iat lies in the future); check the issuer's clock.",
  },
  token_too_old: {
    status: 401,
    error: "invalid_token",
    description: "The token was issued longer ago than gatepass accepts; use the token early in the job.",
  },
  claims_invalid: {
    status: 401,
    error: "invalid_token",
    description: "The token's claims are missing or of the wrong type.",
  },
  not_a_ci_token: {
    status: 401,
    error: "invalid_token",
    description:
      "The token is not a CI job token (project_id, pipeline_id and job_id are required); use an id_tokens: token.",
  },
  legacy_token_refused: {
    status: 401,
    error: "invalid_token",
    description: "Legacy CI_JOB_JWT tokens are not accepted for this issuer; use id_tokens: instead.",
  },
  jwks_unavailable: {
    status: 503,
    error: "temporarily_unavailable",
    description: "gatepass cannot obtain the issuer's signing keys right now; retry later.",
  },

  // --- keys pushed for private issuers ---
  jwks_invalid: {
    status: 400,
    error: "invalid_request",
    description:
      "The key set is not a valid public JWKS (every key needs a kid, no private members, RSA of 2048 bits or more).",
  },
  issuer_not_pushable: {
    status: 409,
    error: "invalid_request",
    description: "Keys can only be pushed for an issuer configured in policies/ with keys: { source: pushed }.",
  },
  push_credential_invalid: {
    status: 401,
    error: "invalid_token",
    description:
      "The push credential is not valid; send the whole gpk_… value that gatepass jwks credential create printed, " +
      "as 'Authorization: Bearer gpk_…'.",
  },
  push_credential_expired: {
    status: 401,
    error: "invalid_token",
    description:
      "This push credential has expired; create a new one (gatepass jwks credential create) and put it in the CI " +
      "variable that holds the old one.",
  },
  push_credential_revoked: {
    status: 401,
    error: "invalid_token",
    description:
      "This push credential was revoked; create a new one (gatepass jwks credential create) and put it in the CI " +
      "variable that holds the old one.",
  },
  push_credential_issuer_changed: {
    status: 403,
    error: "access_denied",
    description:
      "This push credential was made for an issuer at another URL than the live policy's (or before credentials " +
      "were bound to URLs); create a new one (gatepass jwks credential create) for the issuer as it is now.",
  },
  push_credential_wrong_issuer: {
    status: 403,
    error: "access_denied",
    description:
      "This push credential pushes keys for another issuer only; use the credential created with --issuer for this " +
      "one.",
  },

  // --- policy ---
  policy_denied: { status: 403, error: "access_denied", description: "No policy rule lets this job use that target." },
  target_unknown: { status: 404, error: "invalid_target", description: "No target of that name is configured." },
  policy_unavailable: {
    status: 503,
    error: "temporarily_unavailable",
    description: "No valid policy snapshot is loaded; an admin must push policies.",
  },
  policy_invalid: {
    status: 400,
    error: "invalid_request",
    description: "The policy snapshot is invalid and was not accepted.",
  },

  // --- credential exchange ---
  invalid_scope: {
    status: 400,
    error: "invalid_scope",
    description: "The requested scope or lifetime exceeds what the target allows.",
  },
  format_unsupported: {
    status: 400,
    error: "invalid_request",
    description: "That output format is not available for this target.",
  },
  grant_type_unsupported: {
    status: 400,
    error: "unsupported_grant_type",
    description: "Only urn:ietf:params:oauth:grant-type:token-exchange is supported.",
  },
  upstream_denied: {
    status: 403,
    error: "unauthorized_client",
    description: "The cloud refused the exchange; check the cloud-side trust configuration for this target.",
  },
  upstream_unavailable: {
    status: 502,
    error: "temporarily_unavailable",
    description: "The cloud's token service failed; retry later.",
  },
  upstream_timeout: {
    status: 504,
    error: "temporarily_unavailable",
    description: "The cloud's token service did not answer in time; retry later.",
  },
  upstream_ttl_too_long: {
    status: 502,
    error: "server_error",
    description:
      "Vault issued a token that lives longer than the target's max_lifetime, so gatepass did not hand it out; set " +
      "the Vault role's token_ttl and token_max_ttl to at most the target's max_lifetime.",
  },
  signing_unavailable: { status: 503, error: "server_error", description: "gatepass has no signing key configured." },

  // --- admin and operations ---
  admin_unauthorized: {
    status: 401,
    error: "invalid_token",
    description: "Send the admin token as 'Authorization: Bearer <GATEPASS_ADMIN_TOKEN>'.",
  },
  admin_disabled: {
    status: 403,
    error: "access_denied",
    description: "The admin API is disabled because GATEPASS_ADMIN_TOKEN is not set.",
  },
  policy_tests_failed: {
    status: 400,
    error: "invalid_request",
    description:
      "The policy test cases sent with the push fail under the pushed policy; nothing was changed. Run `gatepass " +
      "policies test` and fix the policies or the cases.",
  },
  policy_lockout: {
    status: 409,
    error: "invalid_request",
    description:
      "This push or rollback would remove every rule granting gatepass:policies-push, so no pipeline could push " +
      "again; nothing was changed. Keep such a rule, or send force: true (--force) if that is meant.",
  },
  policy_push_busy: {
    status: 409,
    error: "temporarily_unavailable",
    description:
      "Another policy push or rollback held the write lease; nothing this request asked for was served. Retry once " +
      "it has finished.",
  },
  policy_version_unknown: {
    status: 404,
    error: "not_found",
    description:
      "No pushed policy version has that id (GET /v1/admin/policies/history lists them), or none is active yet.",
  },
  admin_forbidden: {
    status: 403,
    error: "access_denied",
    description:
      "The CI job's token verified, but no policy rule grants its job the capability this endpoint needs (named in " +
      "`capability`); add it to the allow list of a rule for the policy repository's protected pipelines.",
  },
  rate_limited: {
    status: 429,
    error: "rate_limited",
    description: "Too many requests for this project; retry after the delay in Retry-After.",
  },
  use_limit_exceeded: {
    status: 429,
    error: "rate_limited",
    description: "This job has used up its credentials for this target.",
  },
  use_limit_unavailable: {
    status: 503,
    error: "temporarily_unavailable",
    description: "gatepass cannot check this target's per-job use limit right now; retry later.",
  },
  config_invalid: {
    status: 503,
    error: "server_error",
    description:
      "gatepass is not configured correctly and refuses to serve; its admin finds what to fix in the Worker log " +
      "(event config_invalid).",
  },
  internal_error: {
    status: 500,
    error: "server_error",
    description: "gatepass failed unexpectedly; the request id identifies it in the logs.",
  },
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface GatepassErrorOptions {
  /** Sentence for the caller; defaults to the code's description. Never include secrets. */
  description?: string;
  /** Extra, safe, machine-readable fields for the wire body (e.g. upstream_error, claim). */
  details?: Record<string, string | number>;
  /** Internal reason, logged but never sent. */
  cause?: unknown;
  /** HTTP headers to add (e.g. Retry-After). */
  headers?: Record<string, string>;
  /** The refusal this one stands in for on the wire (see token_unverified): logged and audited, never sent. */
  conceals?: GatepassError;
}

export class GatepassError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly oauthError: OAuthError;
  readonly description: string;
  readonly details: Record<string, string | number>;
  readonly headers: Record<string, string>;
  readonly conceals: GatepassError | undefined;

  constructor(code: ErrorCode, options: GatepassErrorOptions = {}) {
    const spec: CodeSpec = ERROR_CODES[code];
    super(`${code}: ${options.description ?? spec.description}`, { cause: options.cause });
    this.name = "GatepassError";
    this.code = code;
    this.status = spec.status;
    this.oauthError = spec.error;
    this.description = options.description ?? spec.description;
    this.details = options.details ?? {};
    this.headers = options.headers ?? {};
    this.conceals = options.conceals;
  }
}

/**
 * What the request's log line and audit row record: the concealed refusal when there is one, so the operator sees the
 * exact reason.
 */
export function recordedError(err: GatepassError): GatepassError {
  return err.conceals ?? err;
}

export function isGatepassError(value: unknown): value is GatepassError {
  return value instanceof GatepassError;
}

export interface WireError {
  error: OAuthError;
  error_description: string;
  code: ErrorCode;
  request_id: string;
  [detail: string]: string | number;
}

export function toWireError(err: GatepassError, requestId: string): WireError {
  // Retry-After repeated in the body as whole seconds, so a curl-only client (the CI template) can
  // honour it without parsing headers.
  const retryAfter = err.headers["Retry-After"];
  return {
    ...err.details,
    ...(retryAfter !== undefined && /^[0-9]{1,6}$/.test(retryAfter) ? { retry_after: Number(retryAfter) } : {}),
    error: err.oauthError,
    error_description: err.description,
    code: err.code,
    request_id: requestId,
  };
}

// GitLab-shaped (and GitHub-shaped: githubClaims) CI ID tokens for tests: keys made in the test (WebCrypto via jose), the full claim
// set GitLab documents for id_tokens (https://docs.gitlab.com/ci/secrets/id_token_authentication/),
// and helpers to build forged/broken tokens.
// Works in workerd and in Node.
import { base64url, calculateJwkThumbprint, CompactSign, exportJWK, generateKeyPair, type JWK } from "jose";

export interface TestKey {
  alg: string;
  /** RFC 7638 thumbprint, as GitLab uses. */
  kid: string;
  privateKey: CryptoKey;
  /** Public JWK with kid, alg and use, as a JWKS publishes it. */
  publicJwk: JWK & { kid: string };
}

export async function createTestKey(alg = "RS256", options: { kid?: string } = {}): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = options.kid ?? (await calculateJwkThumbprint(jwk));
  return { alg, kid, privateKey, publicJwk: { ...jwk, kid, alg, use: "sig" } };
}

export function jwksOf(...keys: TestKey[]): { keys: (JWK & { kid: string })[] } {
  return { keys: keys.map((key) => key.publicJwk) };
}

export interface ClaimOptions {
  issuer: string;
  audience?: string | string[];
  /** Seconds since the epoch; default: now. */
  now?: number;
  /** exp - iat (GitLab: the job timeout). */
  lifetime?: number;
}

/** Every claim a GitLab 18.x `id_tokens:` token carries for a protected-branch job with an environment. */
export function gitlabClaims(options: ClaimOptions): Record<string, unknown> {
  const iat = options.now ?? Math.floor(Date.now() / 1000);
  const host = new URL(options.issuer).host;
  return {
    namespace_id: "72",
    namespace_path: "platform",
    project_id: "1234",
    project_path: "platform/infra",
    user_id: "42",
    user_login: "alice",
    user_email: "alice@example.com",
    user_access_level: "maintainer",
    user_identities: [{ provider: "saml", extern_uid: "alice@corp" }],
    pipeline_id: "98765",
    pipeline_source: "push",
    job_id: "555001",
    ref: "main",
    ref_type: "branch",
    ref_path: "refs/heads/main",
    ref_protected: "true",
    groups_direct: ["platform", "platform/sre"],
    environment: "production",
    environment_protected: "false",
    deployment_tier: "production",
    environment_action: "start",
    runner_id: 17,
    runner_environment: "gitlab-hosted",
    sha: "8f2b1c0e5d3a4b6c7d8e9f0a1b2c3d4e5f6a7b8c",
    project_visibility: "private",
    ci_config_ref_uri: `${host}/platform/infra//.gitlab-ci.yml@refs/heads/main`,
    ci_config_sha: "8f2b1c0e5d3a4b6c7d8e9f0a1b2c3d4e5f6a7b8c",
    job_project_id: "1234",
    job_project_path: "platform/infra",
    job_namespace_id: "72",
    job_namespace_path: "platform",
    job_source: "push",
    jti: crypto.randomUUID(),
    iss: options.issuer,
    iat,
    nbf: iat - 5,
    exp: iat + (options.lifetime ?? 300),
    sub: "project_path:platform/infra:ref_type:branch:ref:main",
    aud: options.audience ?? "https://gatepass.test",
  };
}

/**
 * A GitHub Actions ID token's claims, as GitHub's OIDC reference documents them (strings throughout,
 * ids as decimal strings): a push to the protected main branch of platform/infra, which the test
 * stand-in issuer signs. Override what a test needs (event_name: "pull_request_target", ...).
 */
export function githubClaims(options: ClaimOptions): Record<string, unknown> {
  const iat = options.now ?? Math.floor(Date.now() / 1000);
  return {
    jti: crypto.randomUUID(),
    sub: "repo:platform/infra:ref:refs/heads/main",
    aud: options.audience ?? "https://gatepass.test",
    ref: "refs/heads/main",
    ref_type: "branch",
    ref_protected: "true",
    sha: "8f2b1c0e5d3a4b6c7d8e9f0a1b2c3d4e5f6a7b8c",
    repository: "platform/infra",
    repository_id: "701",
    repository_owner: "platform",
    repository_owner_id: "70",
    repository_visibility: "private",
    actor: "octocat",
    actor_id: "12",
    run_id: "9123456789",
    run_number: "10",
    run_attempt: "1",
    runner_environment: "github-hosted",
    workflow: "deploy",
    workflow_ref: "platform/infra/.github/workflows/deploy.yml@refs/heads/main",
    workflow_sha: "8f2b1c0e5d3a4b6c7d8e9f0a1b2c3d4e5f6a7b8c",
    job_workflow_ref: "platform/infra/.github/workflows/deploy.yml@refs/heads/main",
    job_workflow_sha: "8f2b1c0e5d3a4b6c7d8e9f0a1b2c3d4e5f6a7b8c",
    head_ref: "",
    base_ref: "",
    event_name: "push",
    iss: options.issuer,
    iat,
    nbf: iat - 5,
    exp: iat + (options.lifetime ?? 300),
  };
}

/** A Buildkite agent token's claims (Buildkite's `buildkite-agent oidc request-token` reference), with the optional organization_id and pipeline_id. */
export function buildkiteClaims(options: ClaimOptions): Record<string, unknown> {
  const iat = options.now ?? Math.floor(Date.now() / 1000);
  return {
    iss: options.issuer,
    sub: "organization:acme-inc:pipeline:deploy:ref:refs/heads/main:commit:9f3182061f1e2cca4702c368cbc039b7dc9d4485:step:deploy",
    aud: options.audience ?? "https://gatepass.test",
    iat,
    nbf: iat,
    exp: iat + (options.lifetime ?? 300),
    organization_slug: "acme-inc",
    pipeline_slug: "deploy",
    build_number: 42,
    build_branch: "main",
    build_commit: "9f3182061f1e2cca4702c368cbc039b7dc9d4485",
    step_key: "deploy",
    job_id: "0184990a-477b-4fa8-9968-496074483cee",
    agent_id: "0184990a-4782-42b5-afc1-16715b10b8ff",
    organization_id: "0184990a-477b-4fa8-9968-496074483a77",
    pipeline_id: "0184990a-4782-42b5-afc1-16715b10b1a0",
  };
}

/** A CircleCI job token's claims (CircleCI's "OpenID Connect tokens" page); the issuer is per organization. */
export function circleciClaims(options: ClaimOptions): Record<string, unknown> {
  const iat = options.now ?? Math.floor(Date.now() / 1000);
  return {
    iss: options.issuer,
    sub: "org/8c2a1e3e-0000-4000-8000-000000000001/project/5e1a0000-0000-4000-8000-000000000002/user/7f000000-0000-4000-8000-000000000003",
    aud: options.audience ?? "https://gatepass.test",
    iat,
    exp: iat + (options.lifetime ?? 3600),
    "oidc.circleci.com/project-id": "5e1a0000-0000-4000-8000-000000000002",
    "oidc.circleci.com/vcs-origin": "github.com/acme/deploy",
    "oidc.circleci.com/vcs-ref": "refs/heads/main",
    "oidc.circleci.com/context-ids": ["a74579f1-2e7d-451e-b009-5c082ad2729e"],
    "oidc.circleci.com/ssh-rerun": false,
  };
}

/** A legacy CI_JOB_JWT (v1): bare-host iss, no aud, sub job_<id>. */
export function legacyClaims(options: Omit<ClaimOptions, "audience">): Record<string, unknown> {
  const claims = gitlabClaims(options);
  delete claims.aud;
  // GitLab's Settings.gitlab.host: the host name alone, without port or relative URL root.
  claims.iss = new URL(options.issuer).hostname;
  claims.sub = `job_${String(claims.job_id)}`;
  return claims;
}

/** Signs a payload with the key; header members can be overridden or added (e.g. to test attacks). */
export async function signToken(
  key: TestKey,
  payload: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: key.alg, typ: "JWT", kid: key.kid, ...header } as { alg: string })
    .sign(key.privateKey);
}

const ECDSA_HASH: Record<string, string> = { "P-256": "SHA-256", "P-384": "SHA-384", "P-521": "SHA-512" };

/**
 * Signs header.payload with WebCrypto directly, without any header validation (jose's signer refuses
 * crit and friends): for tokens that carry what an attacker would put there.
 */
export async function signRaw(
  privateKey: CryptoKey,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): Promise<string> {
  const encoder = new TextEncoder();
  return signBytes(privateKey, encoder.encode(JSON.stringify(header)), encoder.encode(JSON.stringify(payload)));
}

/** Like signRaw, over header and payload bytes JSON.stringify cannot produce (invalid UTF-8, a 1e400 literal). */
export async function signBytes(privateKey: CryptoKey, header: Uint8Array, payload: Uint8Array): Promise<string> {
  const unsigned = `${base64url.encode(header)}.${base64url.encode(payload)}`;
  const params =
    privateKey.algorithm.name === "ECDSA"
      ? { name: "ECDSA", hash: ECDSA_HASH[(privateKey.algorithm as { namedCurve: string }).namedCurve]! }
      : privateKey.algorithm;
  const signature = new Uint8Array(await crypto.subtle.sign(params, privateKey, new TextEncoder().encode(unsigned)));
  return `${unsigned}.${base64url.encode(signature)}`;
}

/** The same RSA private key, usable with another hash (RS256 key → RS512 signer). */
export async function withHash(key: TestKey, hash: "SHA-256" | "SHA-384" | "SHA-512"): Promise<CryptoKey> {
  const jwk = await crypto.subtle.exportKey("jwk", key.privateKey);
  delete (jwk as { alg?: string }).alg;
  return crypto.subtle.importKey("jwk", jwk, { name: "RSASSA-PKCS1-v1_5", hash }, false, ["sign"]);
}

/** Builds a compact token from parts without signing (alg none, stripped or forged signatures). */
export function assembleToken(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  signature: string | Uint8Array = "",
): string {
  const encode = (value: unknown) => base64url.encode(JSON.stringify(value));
  const sig = typeof signature === "string" ? signature : base64url.encode(signature);
  return `${encode(header)}.${encode(payload)}.${sig}`;
}

/** The payload and header of a token, decoded (tests inspect what they signed). */
export function splitToken(token: string): [string, string, string] {
  const [header = "", payload = "", signature = ""] = token.split(".");
  return [header, payload, signature];
}

// Shared fixtures for the exchange tests: targets pointing at the loopback stand-ins (one namespace
// per test, so parallel files never share state), a verified CI identity, a signing key secret.
import { env } from "cloudflare:test";
import { readConfig, type Config } from "../../../src/config";
import { GatepassError } from "../../../src/errors";
import { defaultDeps, type Deps } from "../../../src/deps";
import { KeyRing, parseSigningKeySecret, type SigningKeySecret } from "../../../src/signing-keys/signing-key-secret";
import { generateSecret } from "../../../src/signing-keys/signing-key-rotation";
import type { RetryPolicy } from "../../../src/providers/upstream-call";
import type { AwsTarget, AzureTarget, GcpTarget, OidcTarget, VaultTarget, VerifiedIdentity } from "../../../src/types";
import type { CapturedRequest, Scenario } from "../../support/standins/upstreams";
import { upstreamUrlVars } from "../../support/standins/urls";

type NodeJsonWebKey = NonNullable<Scenario["trust"]["jwks"]>["keys"][number];

export const ISSUER = "http://127.0.0.1:8787";
export const WIP = "projects/123456/locations/global/workloadIdentityPools/ci-pool/providers/gatepass";
export const SA = "deployer@proj.iam.gserviceaccount.com";
export const FAST_RETRY: RetryPolicy = { timeoutMs: 500, maxAttempts: 3, backoffBaseMs: 5 };

export function newNamespace(): string {
  return crypto.randomUUID();
}

export function upstreamBase(ns: string): string {
  return `${env.STANDIN_URL}/up/${ns}`;
}

/** Worker env overrides that send every upstream to the namespace's stand-ins. */
export function upstreamVars(ns: string) {
  return upstreamUrlVars(upstreamBase(ns));
}

export function configFor(ns: string): Config {
  return readConfig({ ...env, GATEPASS_ISSUER: ISSUER, GATEPASS_ENV: "development", ...upstreamVars(ns) });
}

export async function setScenario(ns: string, scenario: Scenario): Promise<void> {
  const res = await fetch(`${upstreamBase(ns)}/_control`, { method: "PUT", body: JSON.stringify(scenario) });
  if (res.status !== 204) throw new Error(`stand-in control failed: ${res.status}`);
}

export async function capturedRequests(ns: string): Promise<CapturedRequest[]> {
  return (await (await fetch(`${upstreamBase(ns)}/_requests`)).json()) as CapturedRequest[];
}

const base = { privileged: false, signing_alg: "ES256" as const, max_lifetime_seconds: 3600 };

export function gcpTarget(overrides: Partial<GcpTarget> = {}): GcpTarget {
  return {
    ...base,
    name: "gcp-deploy",
    type: "gcp",
    workload_identity_provider: WIP,
    service_account: SA,
    scopes: ["https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/devstorage.read_only"],
    audience: `//iam.googleapis.com/${WIP}`,
    ...overrides,
  };
}

export function awsTarget(overrides: Partial<AwsTarget> = {}): AwsTarget {
  return {
    ...base,
    name: "aws-deploy",
    type: "aws",
    role_arn: "arn:aws:iam::111122223333:role/deploy",
    region: "eu-west-1",
    audience: "sts.amazonaws.com",
    ...overrides,
  };
}

export function azureTarget(overrides: Partial<AzureTarget> = {}): AzureTarget {
  return {
    ...base,
    signing_alg: "RS256",
    name: "azure-deploy",
    type: "azure",
    tenant_id: "00000000-0000-0000-0000-00000000000a",
    client_id: "11111111-2222-3333-4444-555555555555",
    scope: "https://management.azure.com/.default",
    audience: "api://AzureADTokenExchange",
    ...overrides,
  };
}

/** The Vault mount's jwt_supported_algs as the README configures it. */
export const VAULT_ALGS = ["ES256", "RS256"];

export function vaultTarget(ns: string, overrides: Partial<VaultTarget> = {}): VaultTarget {
  return {
    ...base,
    name: "vault-ci",
    type: "vault",
    address: `${upstreamBase(ns)}/vault`,
    mount: "gatepass",
    role: "ci",
    audience: "vault",
    ...overrides,
  };
}

export function oidcTarget(overrides: Partial<OidcTarget> = {}): OidcTarget {
  return { ...base, name: "oidc-any", type: "oidc", audience: "https://rp.example.com", ...overrides };
}

export const CI_CLAIMS = {
  sub: "project_path:platform/infra:ref_type:branch:ref:main",
  jti: "11111111-2222-3333-4444-555555555555",
  namespace_id: "10",
  namespace_path: "platform",
  project_id: "42",
  project_path: "platform/infra",
  user_id: "7",
  user_login: "alice",
  user_email: "alice@example.com",
  user_access_level: "maintainer",
  pipeline_id: "900",
  pipeline_source: "push",
  job_id: "1234",
  ref: "main",
  ref_type: "branch",
  ref_path: "refs/heads/main",
  ref_protected: "true",
  sha: "a".repeat(40),
  runner_id: "5",
  runner_environment: "self-hosted",
  groups_direct: ["platform", "ops"],
};

export function identity(now: number, overrides: Partial<VerifiedIdentity> = {}): VerifiedIdentity {
  return {
    issuer: "corp-gitlab",
    issuerUrl: "https://gitlab.example.com",
    claims: CI_CLAIMS,
    tokenSha256: "ab".repeat(32),
    issuedAt: now - 10,
    expiresAt: now + 3000,
    legacy: false,
    ...overrides,
  };
}

let secret: Promise<SigningKeySecret> | undefined;
/** One ES256 + RS256 secret per test file (RSA generation is slow). */
export function testSecret(): Promise<SigningKeySecret> {
  secret ??= generateSecret(["ES256", "RS256"], Math.floor(Date.now() / 1000) - 3600);
  return secret;
}

export async function testKeyRing(): Promise<KeyRing> {
  return KeyRing.import(parseSigningKeySecret(JSON.stringify(await testSecret())));
}

/** Public JWKS for stand-in trust (what gatepass publishes). */
export async function publishedJwks(): Promise<{ keys: NodeJsonWebKey[] }> {
  return { keys: (await testKeyRing()).published(Math.floor(Date.now() / 1000)) as unknown as NodeJsonWebKey[] };
}

export function deps(overrides: Partial<Deps> = {}): Deps {
  return { ...defaultDeps, ...overrides };
}

/** The GatepassError a promise rejects with (other errors are rethrown; success fails the test). */
export async function failure(promise: Promise<unknown>): Promise<GatepassError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GatepassError) return err;
    throw err;
  }
  throw new Error("expected a failure");
}

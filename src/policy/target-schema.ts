// What a valid target is: the fields every target has (name, subject, signing algorithm, lifetime
// bound) and, per type (gcp, aws, azure, vault, oidc), what the upstream needs and what it can bound.

import { isPlainObject } from "../encoding";
import {
  AWS_MAX_DURATION_SECONDS,
  AWS_MIN_DURATION_SECONDS,
  GCP_MAX_ACCESS_TOKEN_LIFETIME_SECONDS,
  MAX_ID_TOKEN_AUDIENCES,
  MAX_SUBJECT_BYTES,
  MINTED_TOKEN_MAX_LIFETIME_SECONDS,
  TARGET_DEFAULT_MAX_LIFETIME_SECONDS,
  TARGET_MAX_LIFETIME_SECONDS,
  TARGET_MIN_LIFETIME_SECONDS,
} from "../limits";
import type { SigningAlg } from "../signing-keys/signing-key-secret";
import type { Target } from "../types";
import { audienceSpec, httpsOrLoopbackUrl, nameSpec } from "./schema-patterns";
import {
  bool,
  duration,
  list,
  oneOf,
  str,
  tagged,
  type Field,
  type Fields,
  type JsonSchema,
  type Mode,
  type Spec,
} from "./shape-spec";

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
/** Vault auth mount: path segments without dots, so no `.`/`..` segment can climb out of /v1/auth/. */
export const VAULT_MOUNT_PATTERN = /^[\w-]+(\/[\w-]+)*$/;
/** Vault namespace path: it goes into a header, so printable segments only, no empty or dot segments. */
export const VAULT_NAMESPACE_PATTERN = /^[\w-]{1,64}(\/[\w-]{1,64}){0,15}$/;

/** How a target type bounds the credential's lifetime with `max_lifetime`, or why it cannot. */
interface LifetimeRule {
  min: number;
  max: number;
  doc: string;
  /** Source mode only: why `max_lifetime` must not be written on this target (the stored default
   *  still applies to the minted assertion). Snapshots always carry max_lifetime_seconds. */
  refuse?: (written: Record<string, unknown>) => string | undefined;
  refuseSchema?: JsonSchema;
}

/** The algorithms a target may be signed with; `why` explains a narrower list to the policy author. */
interface SigningRule {
  algs: readonly SigningAlg[];
  default: SigningAlg;
  why?: string;
}

const ANY_SIGNING_ALG: SigningRule = { algs: ["ES256", "RS256"], default: "ES256" };

/**
 * A narrower rule binds policy files only: snapshots already pushed (in KV, or in D1 history for a
 * rollback) keep loading with any algorithm, since refusing one would take every target down.
 */
function signingAlgSpec(signing: SigningRule): Spec<SigningAlg> {
  const strict = oneOf(signing.algs, signing.why);
  const any = oneOf(ANY_SIGNING_ALG.algs);
  return {
    read: (value, ctx, path) => (ctx.mode === "source" ? strict : any).read(value, ctx, path),
    schema: strict.schema,
  };
}

function targetBase(lifetime: LifetimeRule, signing: SigningRule = ANY_SIGNING_ALG): Fields {
  const refuse = lifetime.refuse;
  return {
    name: { spec: nameSpec, required: true, doc: "Name jobs ask for (/v1/credentials/NAME)." },
    description: { spec: str({ maxLength: 1024 }), doc: "Free text for humans." },
    privileged: {
      spec: bool(),
      default: false,
      doc: "Only protected refs outside merge-request pipelines may reach it (enforced by lint).",
    },
    subject: {
      spec: str({
        pattern: /^[\x21-\x7e]+$/,
        expected: "printable ASCII without spaces",
        maxLength: MAX_SUBJECT_BYTES,
      }),
      doc:
        "sub of the minted token; default target:NAME. Unique across targets (cloud roles trust a target by its " +
        "sub).",
    },
    signing_alg: {
      spec: signingAlgSpec(signing),
      default: signing.default,
      doc: signing.why
        ? `Algorithm of the minted token: ${signing.algs.join(" or ")} only (${signing.why}).`
        : "Algorithm of the minted token.",
    },
    max_lifetime: {
      spec: duration(lifetime.min, lifetime.max),
      stored: "max_lifetime_seconds",
      default: Math.min(Math.max(TARGET_DEFAULT_MAX_LIFETIME_SECONDS, lifetime.min), lifetime.max),
      doc: lifetime.doc,
      ...(refuse
        ? {
            refuse: (written: Record<string, unknown>, mode: Mode) => (mode === "source" ? refuse(written) : undefined),
          }
        : {}),
      ...(lifetime.refuseSchema ? { refuseSchema: lifetime.refuseSchema } : {}),
    },
  };
}

const audience = (doc: string, fallback?: unknown): Field => ({
  spec: audienceSpec,
  ...(fallback === undefined ? { required: true } : { default: fallback }),
  doc,
});

const anyLifetime = { min: TARGET_MIN_LIFETIME_SECONDS, max: TARGET_MAX_LIFETIME_SECONDS };

/** Google ID token audiences a gcp target may be asked for: exact strings, compared as written. */
const ID_TOKEN_AUDIENCE = /^[^\s*]+$/;

const GCP_LIFETIME_WITHOUT_SERVICE_ACCOUNT =
  "max_lifetime is not enforced without service_account: Google STS decides the federated token's lifetime and " +
  "gatepass cannot " +
  "shorten it. Add service_account to bound the credential (its access token lifetime is then at most " +
  "max_lifetime), or remove max_lifetime";
const AZURE_LIFETIME =
  "max_lifetime cannot be enforced for azure targets: Entra ID decides the access token's lifetime (60-90 minutes " +
  "by default) and " +
  "gatepass cannot shorten it. Remove max_lifetime; to change the lifetime, assign an Entra ID token lifetime policy";
// Entra ID refuses an ES256 client assertion (AADSTS5002738), so an azure target is signed RS256.
const AZURE_RSA_ONLY = "Entra ID accepts only RSA-signed client assertions";
const ID_TOKENS_WITHOUT_SERVICE_ACCOUNT =
  "Google ID tokens are issued for a service account: add service_account, or remove id_token_audiences";

export const targetSpec = tagged<Target>("type", {
  gcp: {
    ...targetBase({
      min: TARGET_MIN_LIFETIME_SECONDS,
      max: GCP_MAX_ACCESS_TOKEN_LIFETIME_SECONDS,
      doc:
        "Only with service_account: upper bound for the service account access token's lifetime. Without " +
        "service_account Google STS decides and max_lifetime is refused.",
      refuse: (written) =>
        Object.hasOwn(written, "service_account") ? undefined : GCP_LIFETIME_WITHOUT_SERVICE_ACCOUNT,
      refuseSchema: { dependentRequired: { max_lifetime: ["service_account"] } },
    }),
    workload_identity_provider: {
      spec: str({
        pattern:
          /^projects\/\d{1,20}\/locations\/global\/workloadIdentityPools\/[a-z0-9-]{4,32}\/providers\/[a-z0-9-]{4,32}$/,
        expected: "projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER",
      }),
      required: true,
      doc: "Full resource name of the workload identity provider that trusts gatepass.",
    },
    service_account: {
      spec: str({
        pattern: /^[a-z0-9._-]{1,100}@[a-z0-9.-]{1,150}\.gserviceaccount\.com$/,
        expected: "a service account email (…@….gserviceaccount.com)",
      }),
      doc: "Impersonate this service account; without it the federated token is returned.",
    },
    scopes: {
      spec: list(str({ pattern: /^https:\/\/\S+$/, expected: "an https:// OAuth scope" }), { min: 1, unique: true }),
      default: ["https://www.googleapis.com/auth/cloud-platform"],
      doc: "Scopes a job may request; the first is the default.",
    },
    id_token_audiences: {
      spec: list(str({ pattern: ID_TOKEN_AUDIENCE, expected: "an exact audience without spaces or '*' (no globs)" }), {
        min: 1,
        max: MAX_ID_TOKEN_AUDIENCES,
        unique: true,
      }),
      doc:
        "Audiences a job may ask a Google ID token for (audience=), compared exactly; none by default (no ID " +
        "tokens). Needs service_account.",
      refuse: (written) => (Object.hasOwn(written, "service_account") ? undefined : ID_TOKENS_WITHOUT_SERVICE_ACCOUNT),
      refuseSchema: { dependentRequired: { id_token_audiences: ["service_account"] } },
    },
    audience: audience(
      "aud of the minted token; default //iam.googleapis.com/<workload_identity_provider>.",
      (out: Record<string, unknown>) =>
        typeof out.workload_identity_provider === "string"
          ? `//iam.googleapis.com/${out.workload_identity_provider}`
          : undefined,
    ),
  },
  aws: {
    ...targetBase({
      min: AWS_MIN_DURATION_SECONDS,
      max: AWS_MAX_DURATION_SECONDS,
      doc: "Upper bound for the session's DurationSeconds.",
    }),
    role_arn: {
      spec: str({
        pattern: /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/,
        expected: "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)",
      }),
      required: true,
      doc: "Role assumed with AssumeRoleWithWebIdentity.",
    },
    region: {
      spec: str({ pattern: /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, expected: "an AWS region such as eu-west-1" }),
      default: "us-east-1",
      doc: "STS region.",
    },
    session_policy: {
      spec: str({ maxLength: 2048, refine: jsonObjectText }),
      doc: "Inline session policy (JSON text) that narrows the role further.",
    },
    audience: audience("aud of the minted token.", "sts.amazonaws.com"),
  },
  azure: {
    ...targetBase(
      {
        ...anyLifetime,
        doc: "Not allowed: Entra ID decides the access token's lifetime (an Entra token lifetime policy changes it).",
        refuse: () => AZURE_LIFETIME,
        refuseSchema: { not: { required: ["max_lifetime"] } },
      },
      { algs: ["RS256"], default: "RS256", why: AZURE_RSA_ONLY },
    ),
    tenant_id: {
      spec: str({
        refine: (s) =>
          GUID.test(s) || DNS_NAME.test(s)
            ? { value: s }
            : { problem: `'${s}' is not a tenant id (GUID) or tenant domain` },
      }),
      required: true,
      doc: "Entra tenant (GUID or domain).",
    },
    client_id: {
      spec: str({ pattern: GUID, expected: "an application (client) id GUID" }),
      required: true,
      doc: "Application with the federated credential.",
    },
    scope: {
      spec: str({ pattern: /^\S+\/\.default$/, expected: "a resource scope ending in /.default" }),
      default: "https://management.azure.com/.default",
      doc: "Scope for the client-credentials request.",
    },
    audience: audience("aud of the minted token.", "api://AzureADTokenExchange"),
  },
  vault: {
    ...targetBase({
      ...anyLifetime,
      doc: "Upper bound for the Vault token's lease: gatepass refuses a token whose lease exceeds it.",
    }),
    address: {
      spec: str({ refine: httpsOrLoopbackUrl }),
      required: true,
      doc:
        "Vault address (origin, optionally with the path prefix of a reverse proxy), e.g. " +
        "https://vault.example.com:8200.",
    },
    mount: {
      spec: str({ pattern: VAULT_MOUNT_PATTERN, expected: "a mount path such as jwt or auth-ci/jwt" }),
      default: "jwt",
      doc: "JWT auth mount.",
    },
    role: {
      spec: str({ pattern: /^[\w.@-]{1,128}$/, expected: "a Vault role name" }),
      required: true,
      doc: "Vault role to log in as.",
    },
    namespace: {
      spec: str({ pattern: VAULT_NAMESPACE_PATTERN, expected: "a Vault namespace path such as admin or admin/team-a" }),
      doc:
        "Vault Enterprise / HCP Vault namespace of the mount (HCP: admin); sent as X-Vault-Namespace and " +
        "exported as VAULT_NAMESPACE.",
    },
    audience: audience("aud of the minted token; must be in the role's bound_audiences."),
  },
  oidc: {
    ...targetBase({
      min: TARGET_MIN_LIFETIME_SECONDS,
      max: MINTED_TOKEN_MAX_LIFETIME_SECONDS,
      doc: "Upper bound for the minted token's lifetime.",
    }),
    audience: audience("aud of the minted token handed to the job."),
  },
});

function jsonObjectText(text: string): { problem: string } | { value: string } {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isPlainObject(parsed)) return { value: text };
  } catch {
    // fall through
  }
  return { problem: "session_policy must be the text of a JSON object (an IAM policy document)" };
}

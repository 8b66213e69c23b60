// What a valid policy is: issuers, targets and rules, read strictly from plain values (parsed YAML
// sources, or a snapshot read back from KV). Every field is described once below; the same
// descriptions drive validation, defaults and the JSON Schema for editors (json-schema.ts).
//
// Two modes: "source" (YAML as admins write it: durations like `15m`, unquoted `true`/`42` in
// conditions) and "snapshot" (the stored form: every default filled in, durations as `*_seconds`).
// Normalising a valid snapshot gives it back unchanged, which is how loadSnapshot checks it.

import { isLoopbackHost } from "../config";
import { isPlainObject } from "../encoding";
import {
  AWS_MAX_DURATION_SECONDS,
  AWS_MIN_DURATION_SECONDS,
  DEFAULT_MAX_TOKEN_AGE_SECONDS,
  GCP_MAX_ACCESS_TOKEN_LIFETIME_SECONDS,
  MAX_CONFIGURABLE_TOKEN_AGE_SECONDS,
  MAX_CONDITION_ALTERNATIVES,
  MAX_ID_TOKEN_AUDIENCES,
  MAX_KID_LENGTH,
  MAX_ISSUERS,
  MAX_RULES,
  MAX_TARGETS,
  MAX_SUBJECT_BYTES,
  MINTED_TOKEN_MAX_LIFETIME_SECONDS,
  TARGET_DEFAULT_MAX_LIFETIME_SECONDS,
  TARGET_MAX_LIFETIME_SECONDS,
  TARGET_MIN_LIFETIME_SECONDS,
} from "../limits";
import type { SigningAlg } from "../signing-keys/signing-key-secret";
import { subjectFor } from "../mint/minted-token";
import type { IssuerConfig, IssuerProfile, RuleSpec, Target } from "../types";
import { GITLAB_TOKEN_CLAIMS } from "../verify/claim-normalisation";
import { SHIPPED_PROFILES } from "../verify/issuer-kinds/ci-profiles";
import { GITHUB_TOKEN_CLAIMS, githubAudienceProblem, githubIssuerUrlProblem } from "../verify/issuer-kinds/github-actions";
import { canonicalIssuerUrl } from "../verify/issuer-url";
import { isCapability, unknownCapabilityProblem } from "./capabilities";
import { patternProblem } from "./claim-glob";
import {
  bool,
  describe,
  duration,
  fail,
  int,
  INVALID,
  list,
  object,
  oneOf,
  str,
  tagged,
  type Ctx,
  type Field,
  type Fields,
  type JsonSchema,
  type Mode,
  type Out,
  type Path,
  type Problem,
  type Spec,
} from "./shape-spec";

export type { JsonSchema, Mode, Path, Problem } from "./shape-spec";

export interface PolicyParts {
  issuers: IssuerConfig[];
  targets: Target[];
  rules: RuleSpec[];
}

export interface PolicyDocument {
  name: string;
  value: unknown;
}

/** Where a normalised issuer, target or rule came from, for messages with file and line. */
export interface Origin {
  document: string;
  path: Path;
}

export interface NormalizeResult {
  policy: PolicyParts;
  problems: Problem[];
  origins: Map<object, Origin>;
}

/** Claims GitLab puts in CI ID tokens (the list and its sources: GITLAB_TOKEN_CLAIMS). Rules for `kind: gitlab`
 *  issuers may only name these, so a typo is an error instead of a rule that silently never matches.
 *  Left out: iss (the rule's issuer decides it), the token's times, and the claims below. */
export const GITLAB_CLAIMS: ReadonlySet<string> = new Set(
  Object.entries(GITLAB_TOKEN_CLAIMS)
    .filter(([name, type]) => type !== "ignored" && type !== "job_config" && !["iss", "iat", "nbf", "exp"].includes(name))
    .map(([name]) => name),
);

/** Claims GitHub documents for Actions ID tokens (GITHUB_TOKEN_CLAIMS): what rules for `kind: github` issuers may name. */
export const GITHUB_CLAIMS: ReadonlySet<string> = new Set(Object.keys(GITHUB_TOKEN_CLAIMS).filter((name) => !["iss", "iat", "nbf", "exp"].includes(name)));

/** Claims GitLab sends that a condition cannot compare as they are, and why. */
const UNMATCHABLE_GITLAB_CLAIMS: ReadonlyMap<string, string> = new Map([
  ["user_identities", "'user_identities' is a list of objects, which gatepass does not compare: a condition on it never matches"],
  ["job_config", "'job_config' is an object: name its members job_config_url and job_config_sha instead"],
]);

// ---- conditions -------------------------------------------------------------------------------

/** Printable ASCII; `__proto__` is refused because plain objects cannot hold it as an ordinary key. */
const CLAIM_NAME = /^(?!__proto__$)[A-Za-z0-9_][\x21-\x7e]{0,127}$/;

/** A condition value: strings; in sources also `true`/`false` and whole numbers, since claims are compared as strings. */
function patternValue(value: unknown, ctx: Ctx, path: Path): Out<string> {
  let text: string;
  if (typeof value === "string") text = value;
  else if (typeof value === "boolean" && ctx.mode === "source") text = String(value);
  else if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && ctx.mode === "source") text = String(value);
  else return fail(ctx, path, `expected a string (claims are compared as strings), got ${describe(value)}`);
  const problem = patternProblem(text);
  return problem ? fail(ctx, path, problem) : text;
}

function patternList(value: unknown, ctx: Ctx, path: Path): Out<string | string[]> {
  if (!Array.isArray(value)) return patternValue(value, ctx, path);
  if (value.length === 0) return fail(ctx, path, "an empty list matches nothing; remove the condition or list values");
  if (value.length > MAX_CONDITION_ALTERNATIVES) return fail(ctx, path, `may list at most ${MAX_CONDITION_ALTERNATIVES} values`);
  const out = value.map((element, i) => patternValue(element, ctx, [...path, i]));
  return out.includes(INVALID) ? INVALID : (out as string[]);
}

const conditionMap: Spec<RuleSpec["match"]> = {
  read(value, ctx, path) {
    if (!isPlainObject(value)) return fail(ctx, path, `expected a mapping of claim: condition, got ${describe(value)}`);
    const out: RuleSpec["match"] = {};
    let ok = true;
    for (const [claim, condition] of Object.entries(value)) {
      const at = [...path, claim];
      if (!CLAIM_NAME.test(claim)) {
        fail(ctx, at, `'${claim}' is not a claim name`, true);
        ok = false;
        continue;
      }
      let read: Out<RuleSpec["match"][string]>;
      if (isPlainObject(condition)) {
        const keys = Object.keys(condition);
        if (keys.length !== 1 || keys[0] !== "not") {
          read = fail(ctx, at, "a condition mapping must be exactly { not: value-or-list }");
        } else {
          const inner = patternList(condition.not, ctx, [...at, "not"]);
          read = inner === INVALID ? INVALID : { not: inner };
        }
      } else {
        read = patternList(condition, ctx, at);
      }
      if (read === INVALID) ok = false;
      else out[claim] = read;
    }
    return ok ? out : INVALID;
  },
  schema: () => {
    const pattern = { oneOf: [{ type: "string", minLength: 1 }, { type: "boolean" }, { type: "integer", minimum: 0 }] };
    const alternatives = { oneOf: [pattern, { type: "array", items: pattern, minItems: 1, maxItems: MAX_CONDITION_ALTERNATIVES }] };
    return {
      type: "object",
      description: "claim: value. A value is an exact string, a glob (* within one /-segment, ** across segments), a list (any of), or { not: ... }. A missing claim never matches.",
      additionalProperties: {
        oneOf: [alternatives, { type: "object", additionalProperties: false, required: ["not"], properties: { not: alternatives } }],
      },
    };
  },
};

// ---- issuers ----------------------------------------------------------------------------------

/** Issuer and target names; routes use it to refuse a target name no policy can contain before any work. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NAME_EXPECTED = "a name of lower-case letters, digits, '.', '_' and '-' (at most 63 characters)";
const NO_SPACE = /^\S+$/;
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;

/** https anywhere; http only on loopback (the local development issuer: the Worker refuses http
 *  outside development mode, whatever the policy says). */
function httpsOrLoopbackUrl(raw: string): { problem: string } | { value: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: `'${raw}' is not an absolute URL` };
  }
  if (url.username || url.password || url.search || url.hash) return { problem: "URLs must not carry credentials, a query or a fragment" };
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) {
    return { problem: "use https:// (http:// is only allowed for loopback hosts in local development)" };
  }
  return { value: raw };
}

function issuerUrl(raw: string): { problem: string } | { value: string } {
  const canonical = canonicalIssuerUrl(raw);
  if (!canonical) return { problem: `'${raw}' is not an issuer URL (http(s) in plain ASCII: no query, fragment, credentials, dot segments, %-escapes or backslashes)` };
  const checked = httpsOrLoopbackUrl(canonical);
  return "problem" in checked ? checked : { value: canonical };
}

const keySource = tagged<IssuerConfig["keys"]>("source", {
  discovery: {},
  jwks_uri: { jwks_uri: { spec: str({ refine: httpsOrLoopbackUrl }), required: true, doc: "URL of the issuer's JWKS." } },
  pushed: {},
});

const claimName = str({ pattern: CLAIM_NAME, expected: "a claim name (printable ASCII, at most 128 characters)", maxLength: 128 });

const profileFields: Fields = {
  name: { spec: str({ pattern: NAME_PATTERN, expected: NAME_EXPECTED }), doc: "The shipped profile this was expanded from." },
  project_id: { spec: claimName, required: true, doc: "The claim that identifies the job's project by an id that is never reused." },
  owner_id: { spec: claimName, doc: "The claim that identifies the project's owner (organization) by id." },
  project_path: { spec: claimName, doc: "The project's path or name (reusable after a rename or deletion)." },
  owner_path: { spec: claimName, doc: "The owner's path or name." },
  protected_ref: {
    spec: object({ claim: { spec: claimName, required: true, doc: "The claim." }, value: { spec: str({ maxLength: 256 }), required: true, doc: "Its value on protected refs." } }),
    doc: "The claim and value that say the job runs on a protected ref; absent: privileged targets need acknowledge.unprotected.",
  },
  untrusted: {
    spec: object({ claim: { spec: claimName, required: true, doc: "The claim." }, values: { spec: list(str({ maxLength: 256 }), { min: 1, unique: true }), required: true, doc: "Its values on untrusted runs." } }),
    doc: "A claim whose values mark runs of untrusted code or commands; rules reaching privileged targets must exclude them.",
  },
  copy: { spec: list(claimName, { max: 50, unique: true }), default: [], doc: "Claims copied into minted tokens (strings only)." },
};
const profileObject = object<IssuerProfile>(profileFields);
const SHIPPED = [...SHIPPED_PROFILES.keys()];

/** A shipped profile's name (policy files only; stored expanded) or a profile written out. */
const profileSpec: Spec<IssuerProfile> = {
  read(value, ctx, path) {
    if (typeof value === "string" && ctx.mode === "source") {
      const shipped = SHIPPED_PROFILES.get(value);
      return shipped ? structuredClone(shipped) : fail(ctx, path, `'${value}' is not a shipped profile (${SHIPPED.join(", ")}); write the profile out instead (docs/policies.md)`);
    }
    return profileObject.read(value, ctx, path);
  },
  schema: () => ({ oneOf: [{ enum: SHIPPED }, profileObject.schema()] }),
};

const issuerFields: Fields = {
  name: { spec: str({ pattern: NAME_PATTERN, expected: NAME_EXPECTED }), required: true, doc: "Name used by rules, KV keys and audit." },
  url: { spec: str({ refine: issuerUrl }), required: true, doc: "The issuer URL as in the token's iss (canonicalised)." },
  kind: { spec: oneOf(["gitlab", "github", "generic"]), default: "gitlab", doc: "gitlab and github require CI claims and known claim names in rules; generic accepts any claim." },
  profile: {
    spec: profileSpec,
    doc: "kind generic only: a shipped profile (buildkite, circleci) or one written out, naming the claims lint, explain and minting use.",
    refuse: (written) => (written.kind === "generic" ? undefined : "profile is for kind: generic issuers (gitlab and github issuers know their claims); set kind: generic or remove profile"),
  },
  aliases: { spec: list(str({ refine: issuerUrl }), { unique: true }), default: [], doc: "Other spellings of iss accepted for this issuer." },
  audiences: { spec: list(str({ pattern: NO_SPACE, expected: "an audience without spaces" }), { min: 1, unique: true }), required: true, doc: "The token's aud must contain one of these." },
  algorithms: { spec: list(oneOf(ALGORITHMS), { min: 1, unique: true }), default: ["RS256"], doc: "Allowed JWS algorithms." },
  keys: { spec: keySource, default: { source: "discovery" }, doc: "Where the issuer's keys come from: discovery (default), jwks_uri, or pushed (gatepass never fetches)." },
  allowed_kids: { spec: list(str({ maxLength: MAX_KID_LENGTH }), { min: 1, unique: true }), doc: "Only these key ids verify (pin the CI signing key)." },
  max_token_age: {
    spec: duration(60, MAX_CONFIGURABLE_TOKEN_AGE_SECONDS),
    stored: "max_token_age_seconds",
    default: DEFAULT_MAX_TOKEN_AGE_SECONDS,
    doc: "Refuse tokens issued longer ago than this.",
  },
  accept_legacy_ci_job_jwt: { spec: bool(), default: false, doc: "Accept legacy CI_JOB_JWT tokens (bare-host iss, no aud)." },
  single_audience: {
    spec: bool(),
    // Written into every snapshot pushed from now on. A snapshot pushed before the option existed has no
    // key, and loads unchanged (its version hash still describes it): it keeps accepting several
    // audiences until pushed again.
    default: (_out: unknown, mode: Mode) => (mode === "source" ? true : undefined),
    doc: "Refuse tokens whose aud lists more than one audience: any other service the token names could replay it to gatepass. Default true; set false only for jobs that must send one token to several services.",
  },
};

// ---- targets ----------------------------------------------------------------------------------

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
  return { read: (value, ctx, path) => (ctx.mode === "source" ? strict : any).read(value, ctx, path), schema: strict.schema };
}

function targetBase(lifetime: LifetimeRule, signing: SigningRule = ANY_SIGNING_ALG): Fields {
  const refuse = lifetime.refuse;
  return {
    name: { spec: str({ pattern: NAME_PATTERN, expected: NAME_EXPECTED }), required: true, doc: "Name jobs ask for (/v1/credentials/NAME)." },
    description: { spec: str({ maxLength: 1024 }), doc: "Free text for humans." },
    privileged: { spec: bool(), default: false, doc: "Only protected refs outside merge-request pipelines may reach it (enforced by lint)." },
    subject: {
      spec: str({ pattern: /^[\x21-\x7e]+$/, expected: "printable ASCII without spaces", maxLength: MAX_SUBJECT_BYTES }),
      doc: "sub of the minted token; default target:NAME. Unique across targets (cloud roles trust a target by its sub).",
    },
    signing_alg: {
      spec: signingAlgSpec(signing),
      default: signing.default,
      doc: signing.why ? `Algorithm of the minted token: ${signing.algs.join(" or ")} only (${signing.why}).` : "Algorithm of the minted token.",
    },
    max_lifetime: {
      spec: duration(lifetime.min, lifetime.max),
      stored: "max_lifetime_seconds",
      default: Math.min(Math.max(TARGET_DEFAULT_MAX_LIFETIME_SECONDS, lifetime.min), lifetime.max),
      doc: lifetime.doc,
      ...(refuse ? { refuse: (written: Record<string, unknown>, mode: Mode) => (mode === "source" ? refuse(written) : undefined) } : {}),
      ...(lifetime.refuseSchema ? { refuseSchema: lifetime.refuseSchema } : {}),
    },
  };
}

const audience = (doc: string, fallback?: unknown): Field => ({
  spec: str({ pattern: NO_SPACE, expected: "an audience without spaces" }),
  ...(fallback === undefined ? { required: true } : { default: fallback }),
  doc,
});

const anyLifetime = { min: TARGET_MIN_LIFETIME_SECONDS, max: TARGET_MAX_LIFETIME_SECONDS };

/** Google ID token audiences a gcp target may be asked for: exact strings, compared as written. */
const ID_TOKEN_AUDIENCE = /^[^\s*]+$/;

const GCP_LIFETIME_WITHOUT_SERVICE_ACCOUNT =
  "max_lifetime is not enforced without service_account: Google STS decides the federated token's lifetime and gatepass cannot " +
  "shorten it. Add service_account to bound the credential (its access token lifetime is then at most max_lifetime), or remove max_lifetime";
const AZURE_LIFETIME =
  "max_lifetime cannot be enforced for azure targets: Entra ID decides the access token's lifetime (60-90 minutes by default) and " +
  "gatepass cannot shorten it. Remove max_lifetime; to change the lifetime, assign an Entra ID token lifetime policy";
// Entra ID refuses an ES256 client assertion (AADSTS5002738), so an azure target is signed RS256.
const AZURE_RSA_ONLY = "Entra ID accepts only RSA-signed client assertions";
const ID_TOKENS_WITHOUT_SERVICE_ACCOUNT =
  "Google ID tokens are issued for a service account: add service_account, or remove id_token_audiences";

const targetSpec = tagged<Target>("type", {
  gcp: {
    ...targetBase({
      min: TARGET_MIN_LIFETIME_SECONDS,
      max: GCP_MAX_ACCESS_TOKEN_LIFETIME_SECONDS,
      doc: "Only with service_account: upper bound for the service account access token's lifetime. Without service_account Google STS decides and max_lifetime is refused.",
      refuse: (written) => (Object.hasOwn(written, "service_account") ? undefined : GCP_LIFETIME_WITHOUT_SERVICE_ACCOUNT),
      refuseSchema: { dependentRequired: { max_lifetime: ["service_account"] } },
    }),
    workload_identity_provider: {
      spec: str({
        pattern: /^projects\/\d{1,20}\/locations\/global\/workloadIdentityPools\/[a-z0-9-]{4,32}\/providers\/[a-z0-9-]{4,32}$/,
        expected: "projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER",
      }),
      required: true,
      doc: "Full resource name of the workload identity provider that trusts gatepass.",
    },
    service_account: {
      spec: str({ pattern: /^[a-z0-9._-]{1,100}@[a-z0-9.-]{1,150}\.gserviceaccount\.com$/, expected: "a service account email (…@….gserviceaccount.com)" }),
      doc: "Impersonate this service account; without it the federated token is returned.",
    },
    scopes: {
      spec: list(str({ pattern: /^https:\/\/\S+$/, expected: "an https:// OAuth scope" }), { min: 1, unique: true }),
      default: ["https://www.googleapis.com/auth/cloud-platform"],
      doc: "Scopes a job may request; the first is the default.",
    },
    id_token_audiences: {
      spec: list(str({ pattern: ID_TOKEN_AUDIENCE, expected: "an exact audience without spaces or '*' (no globs)" }), { min: 1, max: MAX_ID_TOKEN_AUDIENCES, unique: true }),
      doc: "Audiences a job may ask a Google ID token for (audience=), compared exactly; none by default (no ID tokens). Needs service_account.",
      refuse: (written) => (Object.hasOwn(written, "service_account") ? undefined : ID_TOKENS_WITHOUT_SERVICE_ACCOUNT),
      refuseSchema: { dependentRequired: { id_token_audiences: ["service_account"] } },
    },
    audience: audience("aud of the minted token; default //iam.googleapis.com/<workload_identity_provider>.", (out: Record<string, unknown>) =>
      typeof out.workload_identity_provider === "string" ? `//iam.googleapis.com/${out.workload_identity_provider}` : undefined,
    ),
  },
  aws: {
    ...targetBase({ min: AWS_MIN_DURATION_SECONDS, max: AWS_MAX_DURATION_SECONDS, doc: "Upper bound for the session's DurationSeconds." }),
    role_arn: {
      spec: str({ pattern: /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, expected: "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)" }),
      required: true,
      doc: "Role assumed with AssumeRoleWithWebIdentity.",
    },
    region: { spec: str({ pattern: /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, expected: "an AWS region such as eu-west-1" }), default: "us-east-1", doc: "STS region." },
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
      spec: str({ refine: (s) => (GUID.test(s) || DNS_NAME.test(s) ? { value: s } : { problem: `'${s}' is not a tenant id (GUID) or tenant domain` }) }),
      required: true,
      doc: "Entra tenant (GUID or domain).",
    },
    client_id: { spec: str({ pattern: GUID, expected: "an application (client) id GUID" }), required: true, doc: "Application with the federated credential." },
    scope: {
      spec: str({ pattern: /^\S+\/\.default$/, expected: "a resource scope ending in /.default" }),
      default: "https://management.azure.com/.default",
      doc: "Scope for the client-credentials request.",
    },
    audience: audience("aud of the minted token.", "api://AzureADTokenExchange"),
  },
  vault: {
    ...targetBase({ ...anyLifetime, doc: "Upper bound for the Vault token's lease: gatepass refuses a token whose lease exceeds it." }),
    address: { spec: str({ refine: httpsOrLoopbackUrl }), required: true, doc: "Vault address (origin, optionally with the path prefix of a reverse proxy), e.g. https://vault.example.com:8200." },
    mount: { spec: str({ pattern: VAULT_MOUNT_PATTERN, expected: "a mount path such as jwt or auth-ci/jwt" }), default: "jwt", doc: "JWT auth mount." },
    role: { spec: str({ pattern: /^[\w.@-]{1,128}$/, expected: "a Vault role name" }), required: true, doc: "Vault role to log in as." },
    namespace: {
      spec: str({ pattern: VAULT_NAMESPACE_PATTERN, expected: "a Vault namespace path such as admin or admin/team-a" }),
      doc: "Vault Enterprise / HCP Vault namespace of the mount (HCP: admin); sent as X-Vault-Namespace and exported as VAULT_NAMESPACE.",
    },
    audience: audience("aud of the minted token; must be in the role's bound_audiences."),
  },
  oidc: {
    ...targetBase({ min: TARGET_MIN_LIFETIME_SECONDS, max: MINTED_TOKEN_MAX_LIFETIME_SECONDS, doc: "Upper bound for the minted token's lifetime." }),
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

// ---- rules ------------------------------------------------------------------------------------

/** The shape of an allow entry (also the JSON Schema's pattern): a target name, or a name under gatepass:. */
const ALLOW_ENTRY = /^(?:[a-z0-9][a-z0-9._-]{0,62}|gatepass:[a-z][a-z-]{0,62})$/;

/** A rule's allow entry: a target name, or one of gatepass's capabilities (capabilities.ts), which need no definition. */
function allowEntry(raw: string): { problem: string } | { value: string } {
  const problem = unknownCapabilityProblem(raw);
  return problem === undefined ? { value: raw } : { problem };
}

const ruleFields: Fields = {
  name: { spec: str({ pattern: RULE_NAME, expected: "a rule name of letters, digits, '.', '_' and '-'" }), required: true, doc: "Unique rule name (shown in grants and audit)." },
  issuer: { spec: str({ pattern: NAME_PATTERN, expected: NAME_EXPECTED }), required: true, doc: "The issuer whose tokens this rule applies to." },
  description: { spec: str({ maxLength: 1024 }), doc: "Free text for humans." },
  match: { spec: conditionMap, required: true, doc: "Conditions on verified claims; all must hold." },
  allow: { spec: list(str({ pattern: ALLOW_ENTRY, expected: `${NAME_EXPECTED}, or a gatepass capability (gatepass:…)`, refine: allowEntry }), { min: 1, unique: true }), required: true, doc: "Targets this rule grants, and gatepass's own capabilities (gatepass:policies-push, gatepass:policies-plan, gatepass:audit-read, gatepass:status-read)." },
  acknowledge: {
    spec: object({
      broad: { spec: bool(), doc: "The rule has no project or namespace scope on purpose." },
      unprotected: { spec: bool(), doc: "The rule lets privileged targets be used from unprotected refs or merge-request pipelines." },
      child_pipelines: { spec: bool(), doc: "The rule lets privileged targets be used from child pipelines (on protected refs)." },
      path_scope: { spec: bool(), doc: "The rule lets privileged targets be reached by project or namespace path alone: a path can be reused after a rename, transfer or deletion, an id cannot." },
    }),
    doc: "Explicit acknowledgements that silence lint refusals.",
  },
  max_uses_per_job: { spec: int(1, 1000), doc: "At most this many credentials per job and target." },
};

const issuerSpec = object<IssuerConfig>(issuerFields);
const ruleSpec = object<RuleSpec>(ruleFields);

/** JSON Schema of one policy source file, for editors. */
export function policyFileSchema(): JsonSchema {
  return object({
    issuers: { spec: list(issuerSpec, { max: MAX_ISSUERS }), doc: "CI token issuers." },
    targets: { spec: list(targetSpec, { max: MAX_TARGETS }), doc: "Credentials jobs may obtain." },
    rules: { spec: list(ruleSpec, { max: MAX_RULES }), doc: "Which jobs may obtain which targets." },
  }, "A gatepass policy file: any of issuers, targets, rules.").schema();
}

// ---- the whole policy -------------------------------------------------------------------------

/** Reads and checks policy documents (every file of a policy, or one snapshot) and cross-checks names. */
const SECTIONS: Record<keyof PolicyParts, Spec<object>> = { issuers: issuerSpec, targets: targetSpec, rules: ruleSpec };

export function normalizePolicy(documents: readonly PolicyDocument[], mode: Mode): NormalizeResult {
  const problems: Problem[] = [];
  const origins = new Map<object, Origin>();
  const policy: PolicyParts = { issuers: [], targets: [], rules: [] };
  // Names of items that were refused: rules naming them get no second, misleading "unknown" error.
  const refused = new Set<string>();

  for (const document of documents) {
    const ctx: Ctx = { mode, document: document.name, problems };
    const value = document.value ?? {}; // an empty file is an empty policy
    if (!isPlainObject(value)) {
      fail(ctx, [], `a policy file is a mapping with issuers, targets and/or rules, got ${describe(value)}`);
      continue;
    }
    for (const key of Object.keys(value)) {
      if (!Object.hasOwn(SECTIONS, key)) fail(ctx, [key], `unknown key '${key}'; a policy file has issuers, targets and/or rules`, true);
    }
    for (const [key, spec] of Object.entries(SECTIONS)) {
      const items = value[key];
      if (items === undefined || items === null) continue;
      if (!Array.isArray(items)) {
        fail(ctx, [key], `expected a list, got ${describe(items)}`);
        continue;
      }
      // Each item is read on its own so one bad item does not hide the others' problems.
      items.forEach((item, index) => {
        const read = spec.read(item, ctx, [key, index]);
        if (read === INVALID) {
          if (isPlainObject(item) && typeof item.name === "string") refused.add(`${key}:${item.name}`);
          return;
        }
        (policy[key as keyof PolicyParts] as object[]).push(read);
        origins.set(read, { document: document.name, path: [key, index] });
      });
    }
  }

  crossCheck(policy, origins, problems, refused);
  return { policy, problems, origins };
}

function crossCheck(policy: PolicyParts, origins: Map<object, Origin>, problems: Problem[], refused: ReadonlySet<string>): void {
  const at = (item: object, ...rest: (string | number)[]): Omit<Problem, "message"> => {
    const origin = origins.get(item)!;
    return { document: origin.document, path: [...origin.path, ...rest] };
  };
  const unique = (kind: string, items: readonly { name: string }[]) => {
    const seen = new Map<string, object>();
    for (const item of items) {
      const first = seen.get(item.name);
      if (first) problems.push({ ...at(item, "name"), message: `duplicate ${kind} name '${item.name}' (first defined in ${origins.get(first)!.document})` });
      else seen.set(item.name, item);
    }
  };
  unique("issuer", policy.issuers);
  unique("target", policy.targets);
  unique("rule", policy.rules);

  // Cloud roles (AWS trust policies, GCP principals, Entra federated credentials, Vault roles) trust a
  // target by the sub gatepass mints for it. Two targets with one sub would let a job allowed the lesser
  // one present a token the other's role accepts (oidc targets even hand the minted token to the job).
  // Compared ignoring ASCII case, so a case-insensitive trust condition cannot join them either.
  const subjects = new Map<string, Target>();
  const named = new Set<string>();
  for (const target of policy.targets) {
    if (named.has(target.name)) continue; // already reported as a duplicate name
    named.add(target.name);
    const sub = subjectFor(target);
    const key = sub.toLowerCase();
    const first = subjects.get(key);
    if (!first) {
      subjects.set(key, target);
      continue;
    }
    const firstSub = subjectFor(first);
    problems.push({
      ...at(target, target.subject === undefined ? "name" : "subject"),
      message:
        `target '${target.name}' would be minted with sub '${sub}', the same ${sub === firstSub ? "" : "(ignoring case) "}as target '${first.name}' ` +
        `(first defined in ${origins.get(first)!.document}): each cloud role trusts exactly one target by its sub, so a job allowed ` +
        `'${target.name}' could obtain '${first.name}''s credential; give one of them a different subject`,
    });
  }

  // Every spelling of `iss` must lead to exactly one issuer.
  const urls = new Map<string, string>();
  for (const issuer of policy.issuers) {
    for (const [url, where] of [[issuer.url, ["url"]] as const, ...issuer.aliases.map((alias, i) => [alias, ["aliases", i]] as const)]) {
      const owner = urls.get(url);
      if (owner !== undefined) problems.push({ ...at(issuer, ...where), message: `issuer URL '${url}' is already used by issuer '${owner}'` });
      else urls.set(url, issuer.name);
    }
  }

  for (const issuer of policy.issuers.filter((i) => i.kind === "github")) {
    for (const [url, where] of [[issuer.url, ["url"]] as const, ...issuer.aliases.map((alias, i) => [alias, ["aliases", i]] as const)]) {
      const problem = githubIssuerUrlProblem(url);
      if (problem) problems.push({ ...at(issuer, ...where), message: problem });
    }
    issuer.audiences.forEach((audience, i) => {
      const problem = githubAudienceProblem(audience, issuer.url);
      if (problem) problems.push({ ...at(issuer, "audiences", i), message: problem });
    });
    if (issuer.accept_legacy_ci_job_jwt) problems.push({ ...at(issuer, "accept_legacy_ci_job_jwt"), message: "legacy CI_JOB_JWT tokens are GitLab's; remove accept_legacy_ci_job_jwt from a github issuer" });
  }

  const issuers = new Map(policy.issuers.map((issuer) => [issuer.name, issuer]));
  const targets = new Set(policy.targets.map((target) => target.name));
  for (const [section, max] of [["issuers", MAX_ISSUERS], ["targets", MAX_TARGETS], ["rules", MAX_RULES]] as const) {
    const extra = policy[section][max];
    if (extra) problems.push({ ...at(extra), message: `at most ${max} ${section} are supported` });
  }
  for (const rule of policy.rules) {
    const issuer = issuers.get(rule.issuer);
    if (!issuer) {
      if (!refused.has(`issuers:${rule.issuer}`)) problems.push({ ...at(rule, "issuer"), message: `unknown issuer '${rule.issuer}'; configured issuers: ${[...issuers.keys()].join(", ") || "none"}` });
    } else if (issuer.kind === "gitlab") {
      for (const claim of Object.keys(rule.match)) {
        const unmatchable = UNMATCHABLE_GITLAB_CLAIMS.get(claim);
        if (unmatchable !== undefined) {
          problems.push({ ...at(rule, "match", claim), atKey: true, message: unmatchable });
        } else if (!GITLAB_CLAIMS.has(claim)) {
          problems.push({ ...at(rule, "match", claim), atKey: true, message: `'${claim}' is not a GitLab CI token claim (see docs/policies.md for the list)` });
        }
      }
    } else if (issuer.kind === "github") {
      for (const claim of Object.keys(rule.match)) {
        if (!GITHUB_CLAIMS.has(claim)) problems.push({ ...at(rule, "match", claim), atKey: true, message: `'${claim}' is not a GitHub Actions token claim (see docs/github.md for the list)` });
      }
    }
    rule.allow.forEach((target, i) => {
      if (!isCapability(target) && !targets.has(target) && !refused.has(`targets:${target}`)) problems.push({ ...at(rule, "allow", i), message: `unknown target '${target}'; define it under targets:` });
    });
  }
}

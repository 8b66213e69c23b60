// What a valid issuer is: its URL (canonical, https or loopback), where its keys come from, the
// algorithms and audiences it may use and, for kind generic, the CI profile naming its claims.

import { DEFAULT_MAX_TOKEN_AGE_SECONDS, MAX_CONFIGURABLE_TOKEN_AGE_SECONDS, MAX_KID_LENGTH } from "../limits";
import type { IssuerConfig, IssuerProfile } from "../types";
import { SHIPPED_PROFILES } from "../verify/issuer-kinds/ci-profiles";
import { canonicalIssuerUrl } from "../verify/issuer-url";
import { audienceSpec, CLAIM_NAME, httpsOrLoopbackUrl, nameSpec } from "./schema-patterns";
import {
  bool,
  duration,
  fail,
  list,
  object,
  oneOf,
  str,
  tagged,
  type Fields,
  type Mode,
  type Spec,
} from "./shape-spec";

const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;

function issuerUrl(raw: string): { problem: string } | { value: string } {
  const canonical = canonicalIssuerUrl(raw);
  if (!canonical)
    return {
      problem:
        `'${raw}' is not an issuer URL (http(s) in plain ASCII: no query, fragment, credentials, dot ` +
        `segments, %-escapes or backslashes)`,
    };
  const checked = httpsOrLoopbackUrl(canonical);
  return "problem" in checked ? checked : { value: canonical };
}

const keySource = tagged<IssuerConfig["keys"]>("source", {
  discovery: {},
  jwks_uri: {
    jwks_uri: { spec: str({ refine: httpsOrLoopbackUrl }), required: true, doc: "URL of the issuer's JWKS." },
  },
  pushed: {},
});

const claimName = str({
  pattern: CLAIM_NAME,
  expected: "a claim name (printable ASCII, at most 128 characters)",
  maxLength: 128,
});

const profileFields: Fields = {
  name: { spec: nameSpec, doc: "The shipped profile this was expanded from." },
  project_id: {
    spec: claimName,
    required: true,
    doc: "The claim that identifies the job's project by an id that is never reused.",
  },
  owner_id: { spec: claimName, doc: "The claim that identifies the project's owner (organization) by id." },
  project_path: { spec: claimName, doc: "The project's path or name (reusable after a rename or deletion)." },
  owner_path: { spec: claimName, doc: "The owner's path or name." },
  protected_ref: {
    spec: object({
      claim: { spec: claimName, required: true, doc: "The claim." },
      value: { spec: str({ maxLength: 256 }), required: true, doc: "Its value on protected refs." },
    }),
    doc:
      "The claim and value that say the job runs on a protected ref; absent: privileged targets need " +
      "acknowledge.unprotected.",
  },
  untrusted: {
    spec: object({
      claim: { spec: claimName, required: true, doc: "The claim." },
      values: {
        spec: list(str({ maxLength: 256 }), { min: 1, unique: true }),
        required: true,
        doc: "Its values on untrusted runs.",
      },
    }),
    doc:
      "A claim whose values mark runs of untrusted code or commands; rules reaching privileged targets must " +
      "exclude them.",
  },
  copy: {
    spec: list(claimName, { max: 50, unique: true }),
    default: [],
    doc: "Claims copied into minted tokens (strings only).",
  },
};
const profileObject = object<IssuerProfile>(profileFields);
const SHIPPED = [...SHIPPED_PROFILES.keys()];

/** A shipped profile's name (policy files only; stored expanded) or a profile written out. */
const profileSpec: Spec<IssuerProfile> = {
  read(value, ctx, path) {
    if (typeof value === "string" && ctx.mode === "source") {
      const shipped = SHIPPED_PROFILES.get(value);
      return shipped
        ? structuredClone(shipped)
        : fail(
            ctx,
            path,
            `'${value}' is not a shipped profile (${SHIPPED.join(", ")}); write the profile out instead ` +
              `(docs/policies.md)`,
          );
    }
    return profileObject.read(value, ctx, path);
  },
  schema: () => ({ oneOf: [{ enum: SHIPPED }, profileObject.schema()] }),
};

const issuerFields: Fields = {
  name: { spec: nameSpec, required: true, doc: "Name used by rules, KV keys and audit." },
  url: {
    spec: str({ refine: issuerUrl }),
    required: true,
    doc: "The issuer URL as in the token's iss (canonicalised).",
  },
  kind: {
    spec: oneOf(["gitlab", "github", "generic"]),
    default: "gitlab",
    doc: "gitlab and github require CI claims and known claim names in rules; generic accepts any claim.",
  },
  profile: {
    spec: profileSpec,
    doc:
      "kind generic only: a shipped profile (buildkite, circleci) or one written out, naming the claims lint, " +
      "explain and minting use.",
    refuse: (written) =>
      written.kind === "generic"
        ? undefined
        : "profile is for kind: generic issuers (gitlab and github issuers know their claims); set kind: generic or " +
          "remove profile",
  },
  aliases: {
    spec: list(str({ refine: issuerUrl }), { unique: true }),
    default: [],
    doc: "Other spellings of iss accepted for this issuer.",
  },
  audiences: {
    spec: list(audienceSpec, { min: 1, unique: true }),
    required: true,
    doc: "The token's aud must contain one of these.",
  },
  algorithms: {
    spec: list(oneOf(ALGORITHMS), { min: 1, unique: true }),
    default: ["RS256"],
    doc: "Allowed JWS algorithms.",
  },
  keys: {
    spec: keySource,
    default: { source: "discovery" },
    doc: "Where the issuer's keys come from: discovery (default), jwks_uri, or pushed (gatepass never fetches).",
  },
  allowed_kids: {
    spec: list(str({ maxLength: MAX_KID_LENGTH }), { min: 1, unique: true }),
    doc: "Only these key ids verify (pin the CI signing key).",
  },
  max_token_age: {
    spec: duration(60, MAX_CONFIGURABLE_TOKEN_AGE_SECONDS),
    stored: "max_token_age_seconds",
    default: DEFAULT_MAX_TOKEN_AGE_SECONDS,
    doc: "Refuse tokens issued longer ago than this.",
  },
  accept_legacy_ci_job_jwt: {
    spec: bool(),
    default: false,
    doc: "Accept legacy CI_JOB_JWT tokens (bare-host iss, no aud).",
  },
  single_audience: {
    spec: bool(),
    // Written into every snapshot pushed from now on. A snapshot pushed before the option existed has no
    // key, and loads unchanged (its version hash still describes it): it keeps accepting several
    // audiences until pushed again.
    default: (_out: unknown, mode: Mode) => (mode === "source" ? true : undefined),
    doc:
      "Refuse tokens whose aud lists more than one audience: any other service the token names could replay it " +
      "to gatepass. Default true; set false only for jobs that must send one token to several services.",
  },
};

export const issuerSpec = object<IssuerConfig>(issuerFields);

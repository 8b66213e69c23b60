// What a valid rule is: its name, the issuer it applies to, the targets it allows, its acknowledgements
// and its conditions (claim names, values, globs, lists, `not`), and which claims each issuer kind has.

import { isPlainObject } from "../encoding";
import { MAX_CONDITION_ALTERNATIVES } from "../limits";
import type { IssuerConfig, RuleSpec } from "../types";
import { GITLAB_TOKEN_CLAIMS } from "../verify/claim-normalisation";
import { GITHUB_TOKEN_CLAIMS } from "../verify/issuer-kinds/github-actions";
import { patternProblem } from "./claim-glob";
import { unknownCapabilityProblem } from "./capabilities";
import { CLAIM_NAME, nameSpec } from "./schema-patterns";
import {
  bool,
  describe,
  fail,
  int,
  INVALID,
  list,
  object,
  str,
  type Ctx,
  type Fields,
  type Out,
  type Path,
  type Spec,
} from "./shape-spec";

const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Claims rules for gitlab and github issuers may not name: iss (the rule's issuer decides it) and the token's times.
 */
const NOT_FOR_RULES: ReadonlySet<string> = new Set(["iss", "iat", "nbf", "exp"]);

/** Claims GitLab puts in CI ID tokens (the list and its sources: GITLAB_TOKEN_CLAIMS). Rules for `kind: gitlab`
 *  issuers may only name these, so a typo is an error instead of a rule that silently never matches.
 *  Left out: NOT_FOR_RULES and the claims below. */
export const GITLAB_CLAIMS: ReadonlySet<string> = new Set(
  Object.entries(GITLAB_TOKEN_CLAIMS)
    .filter(([name, type]) => type !== "ignored" && type !== "job_config" && !NOT_FOR_RULES.has(name))
    .map(([name]) => name),
);

/**
 * Claims GitHub documents for Actions ID tokens (GITHUB_TOKEN_CLAIMS): what rules for `kind: github` issuers may name.
 */
export const GITHUB_CLAIMS: ReadonlySet<string> = new Set(
  Object.keys(GITHUB_TOKEN_CLAIMS).filter((name) => !NOT_FOR_RULES.has(name)),
);

/** Claims GitLab sends that a condition cannot compare as they are, and why. */
const UNMATCHABLE_GITLAB_CLAIMS: ReadonlyMap<string, string> = new Map([
  [
    "user_identities",
    "'user_identities' is a list of objects, which gatepass does not compare: a condition on it never matches",
  ],
  ["job_config", "'job_config' is an object: name its members job_config_url and job_config_sha instead"],
]);

/** Why a rule for an issuer of `kind` must not name `claim` (a typo, or a claim it cannot compare), or undefined. */
export function claimNameProblem(kind: IssuerConfig["kind"], claim: string): string | undefined {
  if (kind === "gitlab") {
    return (
      UNMATCHABLE_GITLAB_CLAIMS.get(claim) ??
      (GITLAB_CLAIMS.has(claim)
        ? undefined
        : `'${claim}' is not a GitLab CI token claim (see docs/policies.md for the list)`)
    );
  }
  if (kind === "github")
    return GITHUB_CLAIMS.has(claim)
      ? undefined
      : `'${claim}' is not a GitHub Actions token claim (see docs/github.md for the list)`;
  return undefined;
}

// ---- conditions -------------------------------------------------------------------------------

/**
 * A condition value: strings; in sources also `true`/`false` and whole numbers, since claims are compared as strings.
 */
function patternValue(value: unknown, ctx: Ctx, path: Path): Out<string> {
  let text: string;
  if (typeof value === "string") text = value;
  else if (typeof value === "boolean" && ctx.mode === "source") text = String(value);
  else if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && ctx.mode === "source")
    text = String(value);
  else return fail(ctx, path, `expected a string (claims are compared as strings), got ${describe(value)}`);
  const problem = patternProblem(text);
  return problem ? fail(ctx, path, problem) : text;
}

function patternList(value: unknown, ctx: Ctx, path: Path): Out<string | string[]> {
  if (!Array.isArray(value)) return patternValue(value, ctx, path);
  if (value.length === 0) return fail(ctx, path, "an empty list matches nothing; remove the condition or list values");
  if (value.length > MAX_CONDITION_ALTERNATIVES)
    return fail(ctx, path, `may list at most ${MAX_CONDITION_ALTERNATIVES} values`);
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
    const alternatives = {
      oneOf: [pattern, { type: "array", items: pattern, minItems: 1, maxItems: MAX_CONDITION_ALTERNATIVES }],
    };
    return {
      type: "object",
      description:
        "claim: value. A value is an exact string, a glob (* within one /-segment, ** across segments), a list (any " +
        "of), or { not: ... }. A missing claim never matches.",
      additionalProperties: {
        oneOf: [
          alternatives,
          { type: "object", additionalProperties: false, required: ["not"], properties: { not: alternatives } },
        ],
      },
    };
  },
};

/** The shape of an allow entry (also the JSON Schema's pattern): a target name, or a name under gatepass:. */
const ALLOW_ENTRY = /^(?:[a-z0-9][a-z0-9._-]{0,62}|gatepass:[a-z][a-z-]{0,62})$/;

/**
 * A rule's allow entry: a target name, or one of gatepass's capabilities (capabilities.ts), which need no definition.
 */
function allowEntry(raw: string): { problem: string } | { value: string } {
  const problem = unknownCapabilityProblem(raw);
  return problem === undefined ? { value: raw } : { problem };
}

const ruleFields: Fields = {
  name: {
    spec: str({ pattern: RULE_NAME, expected: "a rule name of letters, digits, '.', '_' and '-'" }),
    required: true,
    doc: "Unique rule name (shown in grants and audit).",
  },
  issuer: { spec: nameSpec, required: true, doc: "The issuer whose tokens this rule applies to." },
  description: { spec: str({ maxLength: 1024 }), doc: "Free text for humans." },
  match: { spec: conditionMap, required: true, doc: "Conditions on verified claims; all must hold." },
  allow: {
    spec: list(
      str({
        pattern: ALLOW_ENTRY,
        expected:
          "a name of lower-case letters, digits, '.', '_' and '-' (at most 63 characters), or a gatepass capability " +
          "(gatepass:…)",
        refine: allowEntry,
      }),
      { min: 1, unique: true },
    ),
    required: true,
    doc:
      "Targets this rule grants, and gatepass's own capabilities (gatepass:policies-push, " +
      "gatepass:policies-plan, gatepass:audit-read, gatepass:status-read).",
  },
  acknowledge: {
    spec: object({
      broad: { spec: bool(), doc: "The rule has no project or namespace scope on purpose." },
      unprotected: {
        spec: bool(),
        doc: "The rule lets privileged targets be used from unprotected refs or merge-request pipelines.",
      },
      child_pipelines: {
        spec: bool(),
        doc: "The rule lets privileged targets be used from child pipelines (on protected refs).",
      },
      path_scope: {
        spec: bool(),
        doc:
          "The rule lets privileged targets be reached by project or namespace path alone: a path can be reused " +
          "after a rename, transfer or deletion, an id cannot.",
      },
    }),
    doc: "Explicit acknowledgements that silence lint refusals.",
  },
  max_uses_per_job: { spec: int(1, 1000), doc: "At most this many credentials per job and target." },
};

export const ruleSpec = object<RuleSpec>(ruleFields);

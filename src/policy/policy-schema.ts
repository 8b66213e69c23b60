// What a valid policy is: its file sections (issuers, targets, rules), read strictly from plain values
// (parsed YAML sources, or a snapshot read back from KV), then the checks that span items: unique names,
// unique subjects, one issuer per URL, rules naming known issuers, targets and claims. Each section is
// described once, in issuer-schema.ts, target-schema.ts and rule-schema.ts (on the toolkit shape-spec.ts);
// the same descriptions drive validation, defaults and the JSON Schema for editors (policyJsonSchema).
//
// Two modes: "source" (YAML as admins write it: durations like `15m`, unquoted `true`/`42` in
// conditions) and "snapshot" (the stored form: every default filled in, durations as `*_seconds`).
// Normalising a valid snapshot gives it back unchanged, which is how loadSnapshot checks it.

import { isPlainObject } from "../encoding";
import { MAX_ISSUERS, MAX_RULES, MAX_TARGETS } from "../limits";
import { subjectFor } from "../mint/minted-token";
import type { IssuerConfig, RuleSpec, Target } from "../types";
import { githubAudienceProblem, githubIssuerUrlProblem } from "../verify/issuer-kinds/github-actions";
import { isCapability } from "./capabilities";
import { issuerSpec } from "./issuer-schema";
import { claimNameProblem, ruleSpec } from "./rule-schema";
import {
  describe,
  fail,
  INVALID,
  list,
  object,
  type Ctx,
  type JsonSchema,
  type Mode,
  type Path,
  type Problem,
  type Spec,
} from "./shape-spec";
import { targetSpec } from "./target-schema";

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

/**
 * A policy file's sections, in the order they are read and reported: what each holds and how many a policy may have.
 */
const SECTIONS: Record<keyof PolicyParts, { spec: Spec<object>; max: number; doc: string }> = {
  issuers: { spec: issuerSpec, max: MAX_ISSUERS, doc: "CI token issuers." },
  targets: { spec: targetSpec, max: MAX_TARGETS, doc: "Credentials jobs may obtain." },
  rules: { spec: ruleSpec, max: MAX_RULES, doc: "Which jobs may obtain which targets." },
};

/** JSON Schema (draft 2020-12) of one policy source file, for editor completion and checks, e.g. with
 *  `# yaml-language-server: $schema=./schema.json` at the top of a policy file (`policies/schema.json`).
 *  `gatepass policies validate` stays the authority: cross-file names, lint and canonical URLs are
 *  beyond what JSON Schema can say. */
export function policyJsonSchema(): JsonSchema {
  const fields = Object.fromEntries(
    Object.entries(SECTIONS).map(([key, { spec, max, doc }]) => [key, { spec: list(spec, { max }), doc }]),
  );
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "gatepass policy file",
    ...object(fields, "A gatepass policy file: any of issuers, targets, rules.").schema(),
  };
}

/** Reads and checks policy documents (every file of a policy, or one snapshot) and cross-checks names. */
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
      if (!Object.hasOwn(SECTIONS, key))
        fail(ctx, [key], `unknown key '${key}'; a policy file has issuers, targets and/or rules`, true);
    }
    for (const [key, { spec }] of Object.entries(SECTIONS)) {
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

function crossCheck(
  policy: PolicyParts,
  origins: Map<object, Origin>,
  problems: Problem[],
  refused: ReadonlySet<string>,
): void {
  const at = (item: object, ...rest: (string | number)[]): Omit<Problem, "message"> => {
    const origin = origins.get(item)!;
    return { document: origin.document, path: [...origin.path, ...rest] };
  };
  const unique = (kind: string, items: readonly { name: string }[]) => {
    const seen = new Map<string, object>();
    for (const item of items) {
      const first = seen.get(item.name);
      if (first)
        problems.push({
          ...at(item, "name"),
          message: `duplicate ${kind} name '${item.name}' (first defined in ${origins.get(first)!.document})`,
        });
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
        `target '${target.name}' would be minted with sub '${sub}', the same ${
          sub === firstSub ? "" : "(ignoring " + "case) "
        }as target '${first.name}' ` +
        `(first defined in ${origins.get(first)!.document}): each cloud role trusts exactly one target by its sub, ` +
        `so a job allowed ` +
        `'${target.name}' could obtain '${first.name}''s credential; give one of them a different subject`,
    });
  }

  // Every spelling of `iss` must lead to exactly one issuer.
  const urls = new Map<string, string>();
  for (const issuer of policy.issuers) {
    for (const [url, where] of issuerUrls(issuer)) {
      const owner = urls.get(url);
      if (owner !== undefined)
        problems.push({ ...at(issuer, ...where), message: `issuer URL '${url}' is already used by issuer '${owner}'` });
      else urls.set(url, issuer.name);
    }
  }

  for (const issuer of policy.issuers.filter((i) => i.kind === "github")) {
    for (const [url, where] of issuerUrls(issuer)) {
      const problem = githubIssuerUrlProblem(url);
      if (problem) problems.push({ ...at(issuer, ...where), message: problem });
    }
    issuer.audiences.forEach((audience, i) => {
      const problem = githubAudienceProblem(audience, issuer.url);
      if (problem) problems.push({ ...at(issuer, "audiences", i), message: problem });
    });
    if (issuer.accept_legacy_ci_job_jwt)
      problems.push({
        ...at(issuer, "accept_legacy_ci_job_jwt"),
        message: "legacy CI_JOB_JWT tokens are GitLab's; remove accept_legacy_ci_job_jwt from a github issuer",
      });
  }

  const issuers = new Map(policy.issuers.map((issuer) => [issuer.name, issuer]));
  const targets = new Set(policy.targets.map((target) => target.name));
  for (const [section, { max }] of Object.entries(SECTIONS)) {
    const extra = policy[section as keyof PolicyParts][max];
    if (extra) problems.push({ ...at(extra), message: `at most ${max} ${section} are supported` });
  }
  for (const rule of policy.rules) {
    const issuer = issuers.get(rule.issuer);
    if (!issuer) {
      if (!refused.has(`issuers:${rule.issuer}`))
        problems.push({
          ...at(rule, "issuer"),
          message: `unknown issuer '${rule.issuer}'; configured issuers: ${[...issuers.keys()].join(", ") || "none"}`,
        });
    } else {
      for (const claim of Object.keys(rule.match)) {
        const problem = claimNameProblem(issuer.kind, claim);
        if (problem !== undefined) problems.push({ ...at(rule, "match", claim), atKey: true, message: problem });
      }
    }
    rule.allow.forEach((target, i) => {
      if (!isCapability(target) && !targets.has(target) && !refused.has(`targets:${target}`))
        problems.push({ ...at(rule, "allow", i), message: `unknown target '${target}'; define it under targets:` });
    });
  }
}

/** Every spelling of an issuer's `iss`, with where it is written. */
function issuerUrls(issuer: IssuerConfig): (readonly [string, Path])[] {
  return [[issuer.url, ["url"]], ...issuer.aliases.map((alias, i) => [alias, ["aliases", i]] as const)];
}

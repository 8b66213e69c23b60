// Refusals for rules that parse but are unsafe or broader than they look. Each refusal can only be
// silenced by the rule itself (acknowledge: { broad | unprotected | child_pipelines | path_scope: true }),
// so a reviewer sees it.

import type { IssuerConfig, RuleSpec, Target } from "../types";
import { idClaims, scopeClaims, vocabularyOf, type ClaimVocabulary } from "../verify/issuer-kinds/claim-vocabulary";
import { lintCapabilityRule, type CapabilityLintCode } from "./capability-lint";
import { compileCondition, conditionParts, type Condition } from "./rule-condition";
import type { Path, PolicyParts } from "./policy-schema";

export type LintCode =
  | "no-scope"
  | "ref-without-ref-type"
  | "privileged-unprotected-ref"
  | "privileged-merge-requests"
  | "privileged-child-pipelines"
  | "privileged-legacy-tokens"
  | "privileged-path-scope"
  | "unneeded-acknowledgement"
  | CapabilityLintCode;

export interface LintFinding {
  code: LintCode;
  severity: "error" | "warning";
  rule: RuleSpec;
  /** Where inside the rule (e.g. ["match", "ref"]); empty for the rule as a whole. */
  at: Path;
  message: string;
}

/** The source of every child pipeline, a merge-request pipeline's children (running its code) included. */
const CHILD_PIPELINE_SOURCE = "parent_pipeline";

/** What the lint suggests for pipeline_source: the sources a deploy runs from, rather than a list of exclusions. */
const DEPLOY_SOURCES_EXAMPLE = "pipeline_source: [push, web, schedule]";

export function lintPolicy(policy: PolicyParts): LintFinding[] {
  const privileged = new Set(policy.targets.filter((t: Target) => t.privileged).map((t) => t.name));
  const acceptingLegacy = new Set(policy.issuers.filter((i) => i.accept_legacy_ci_job_jwt).map((i) => i.name));
  const issuers = new Map<string, IssuerConfig>(policy.issuers.map((issuer) => [issuer.name, issuer]));
  // Each rule is read in its issuer's vocabulary: GitLab's, GitHub's, or the issuer's profile.
  return policy.rules.flatMap((rule) => [
    ...lintRule(rule, privileged, acceptingLegacy, vocabularyOf(issuers.get(rule.issuer))),
    // Capabilities: errors whatever the rule acknowledges (capability-lint.ts).
    ...lintCapabilityRule(rule, issuers.get(rule.issuer)).map((finding): LintFinding => ({
      ...finding,
      severity: "error",
      rule,
    })),
  ]);
}

function lintRule(
  rule: RuleSpec,
  privilegedTargets: ReadonlySet<string>,
  issuersAcceptingLegacy: ReadonlySet<string>,
  vocabulary: ClaimVocabulary,
): LintFinding[] {
  const findings: LintFinding[] = [];
  const add = (code: LintCode, at: Path, message: string, severity: LintFinding["severity"] = "error") =>
    findings.push({ code, severity, rule, at, message });
  const condition = (claim: string): Condition | undefined =>
    Object.hasOwn(rule.match, claim) ? compileCondition(claim, rule.match[claim]!) : undefined;
  const ack = rule.acknowledge ?? {};

  const ids = new Set(idClaims(vocabulary));
  const scopes = scopeClaims(vocabulary);
  const scopedBy = scopes.filter(
    (claim) => Object.hasOwn(rule.match, claim) && isScoping(claim, rule.match[claim]!, ids),
  );
  const scoped = scopedBy.length > 0;
  // A CI hands a path to whoever takes it after a rename, transfer or deletion; an id is never reused.
  const byPathOnly = scoped && !scopedBy.some((claim) => ids.has(claim));
  if (!scoped && !ack.broad) {
    add(
      "no-scope",
      ["match"],
      `rule '${rule.name}' lets any project of issuer '${rule.issuer}' match: add ${orList(scopes)} ` +
        "with a literal first segment (e.g. 'platform/**'), or set acknowledge: { broad: true } if that is intended",
    );
  }
  if (scoped && ack.broad)
    add(
      "unneeded-acknowledgement",
      ["acknowledge", "broad"],
      "acknowledge.broad is not needed: the rule is scoped",
      "warning",
    );

  if (vocabulary.refNeedsRefType && Object.hasOwn(rule.match, "ref")) {
    const refType = Object.hasOwn(rule.match, "ref_type") ? conditionParts(rule.match.ref_type!) : undefined;
    // One exact value: a list (`[branch, tag]`) lets a tag carry the branch's name just like no ref_type.
    if (!refType || refType.negated || refType.patterns.length !== 1 || refType.patterns[0]!.includes("*")) {
      add(
        "ref-without-ref-type",
        ["match", "ref"],
        "a tag can carry a branch's name (a tag 'main' is not the branch 'main'): add ref_type: branch (or tag) " +
          "next to ref, " +
          "one exact value (a list such as [branch, tag] matches either); split the rule if both are meant",
      );
    }
  }

  const reachesPrivileged = rule.allow.filter((target) => privilegedTargets.has(target));
  if (reachesPrivileged.length > 0 && issuersAcceptingLegacy.has(rule.issuer)) {
    // Not acknowledgeable: no condition on the claims makes a token without aud safe from replay.
    add(
      "privileged-legacy-tokens",
      ["allow"],
      `privileged target(s) ${reachesPrivileged.join(", ")} must not be reachable with legacy CI_JOB_JWT tokens, ` +
        `which carry no aud ` +
        `(any service a job ever sent one to could replay it): set accept_legacy_ci_job_jwt: false on issuer ` +
        `'${rule.issuer}', ` +
        "or remove these targets from the rule",
    );
  }
  if (reachesPrivileged.length > 0) {
    const names = reachesPrivileged.join(", ");
    const refOk = protectsRef(vocabulary, condition);
    const { untrusted } = vocabulary;
    const source = untrusted ? condition(untrusted.claim) : undefined;
    // Only a positive list of the trusted values holds: a value missing from the token matches nothing.
    const sourceOk = !untrusted || (source !== undefined && untrusted.values.every((value) => !source.matches(value)));
    if (!ack.unprotected) {
      if (!refOk) {
        const protectedRef = vocabulary.protectedRef;
        add(
          "privileged-unprotected-ref",
          ["match"],
          protectedRef
            ? `privileged target(s) ${names} must only be reachable from protected refs: add ` +
                `${protectedRef.claim}: "${protectedRef.value}", ` +
                "or set acknowledge: { unprotected: true } if that is intended"
            : `privileged target(s) ${names} must only be reachable from protected refs, and issuer ` +
                `'${rule.issuer}' (${vocabulary.ci}) ` +
                "names no claim that says a ref is protected: give its profile protected_ref, or set acknowledge: { " +
                "unprotected: true } " +
                "and say in a comment what protects the ref instead",
        );
      }
      if (!sourceOk) {
        add(
          "privileged-merge-requests",
          ["match"],
          `privileged target(s) ${names} must not be reachable from ${untrusted!.what}: ` +
            `list the ${untrusted!.claim} values you deploy from (e.g. ${untrusted!.example}), ` +
            "or set acknowledge: { unprotected: true } if that is intended",
        );
      }
    } else if (refOk && sourceOk) {
      add(
        "unneeded-acknowledgement",
        ["acknowledge", "unprotected"],
        "acknowledge.unprotected is not needed: the rule already requires protected refs outside merge requests",
        "warning",
      );
    }
    // Only acknowledge.child_pipelines silences this warning (acknowledge.unprotected is for the errors).
    const childPipelines =
      vocabulary.childPipelines && sourceOk && source !== undefined && source.matches(CHILD_PIPELINE_SOURCE);
    if (childPipelines && !ack.child_pipelines) {
      add(
        "privileged-child-pipelines",
        ["match", "pipeline_source"],
        `privileged target(s) ${names} can be reached from child pipelines (pipeline_source ` +
          `${CHILD_PIPELINE_SOURCE}), and the child ` +
          `pipelines of a merge-request pipeline run its code with that source too, so only ref_protected guards ` +
          `them: list the ` +
          `sources you deploy from (e.g. ${DEPLOY_SOURCES_EXAMPLE}), or set acknowledge: { child_pipelines: true } ` +
          `if child pipelines ` +
          "on protected refs need these targets",
        "warning",
      );
    } else if (!childPipelines && ack.child_pipelines) {
      const why = !vocabulary.childPipelines
        ? `${vocabulary.ci} has no child pipelines`
        : sourceOk
          ? "the rule's pipeline_source excludes child pipelines"
          : "its pipeline_source admits merge-request pipelines, which privileged-merge-requests is about";
      add(
        "unneeded-acknowledgement",
        ["acknowledge", "child_pipelines"],
        `acknowledge.child_pipelines is not needed: ${why}`,
        "warning",
      );
    }
    if (byPathOnly && !ack.path_scope) {
      const paths = scopedBy.map((claim) => `${claim} ${JSON.stringify(rule.match[claim])}`).join(", ");
      add(
        "privileged-path-scope",
        ["match", scopedBy[0]!],
        `privileged target(s) ${names} are reached by path alone (${paths}), and ${vocabulary.ci} gives a path to ` +
          `another project after a ` +
          `rename, transfer or deletion: match ${idAdvice(vocabulary)}, ` +
          "keeping the path next to it if you like (`gatepass policies explain` shows a job's ids), " +
          "or set acknowledge: { path_scope: true } if the path is meant",
        "warning",
      );
    } else if (!byPathOnly && ack.path_scope) {
      const why = scoped ? `the rule is scoped by ${orList(idClaims(vocabulary))}` : "the rule has no path scope";
      add(
        "unneeded-acknowledgement",
        ["acknowledge", "path_scope"],
        `acknowledge.path_scope is not needed: ${why}`,
        "warning",
      );
    }
  } else {
    for (const key of ["unprotected", "child_pipelines", "path_scope"] as const) {
      if (ack[key])
        add(
          "unneeded-acknowledgement",
          ["acknowledge", key],
          `acknowledge.${key} is not needed: the rule allows no privileged target`,
          "warning",
        );
    }
  }
  return findings;
}

/**
 * A positive condition whose every alternative pins a literal: an id without wildcards, or a path whose first segment
 * is literal.
 */
function isScoping(claim: string, spec: RuleSpec["match"][string], ids: ReadonlySet<string>): boolean {
  const { negated, patterns } = conditionParts(spec);
  if (negated) return false;
  return patterns.every((pattern) => {
    if (ids.has(claim)) return !pattern.includes("*");
    const first = pattern.split("/")[0]!;
    return first.length > 0 && !first.includes("*");
  });
}

/** The rule requires the issuer's protected-ref value and cannot match its opposite ("false"). */
function protectsRef(vocabulary: ClaimVocabulary, condition: (claim: string) => Condition | undefined): boolean {
  const protectedRef = vocabulary.protectedRef;
  if (!protectedRef) return false;
  const held = condition(protectedRef.claim);
  return held !== undefined && held.matches(protectedRef.value) && !held.matches("false");
}

/** "project_id (or namespace_id, …)": the id claims to match instead of a path. */
function idAdvice(vocabulary: ClaimVocabulary): string {
  const { projectId, ownerId } = vocabulary;
  if (!ownerId) return projectId ?? "an id claim";
  const group = vocabulary.childPipelines ? ", the id of the project's own group, not its subgroups'" : "";
  return `${projectId} (or ${ownerId}${group})`;
}

function orList(claims: readonly string[]): string {
  return claims.length <= 1 ? claims.join("") : `${claims.slice(0, -1).join(", ")} or ${claims.at(-1)}`;
}

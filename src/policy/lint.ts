// Refusals for rules that parse but are unsafe or broader than they look. Each refusal can only be
// silenced by the rule itself (acknowledge: { broad | unprotected | child_pipelines | path_scope: true }),
// so a reviewer sees it.

import type { RuleSpec, Target } from "../types";
import { SCOPE_CLAIMS } from "./compile";
import { lintCapabilityRule, type CapabilityLintCode } from "./capability-lint";
import { compileCondition, conditionParts, type Condition } from "./condition";
import type { Path, PolicyParts } from "./schema";

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

const ID_CLAIMS = new Set(["project_id", "namespace_id"]);

/** Pipeline sources that run code proposed from outside the protected branches (merge requests, forks). */
export const UNTRUSTED_PIPELINE_SOURCES = ["merge_request_event", "external_pull_request_event"] as const;

/** The source of every child pipeline, a merge-request pipeline's children (running its code) included. */
const CHILD_PIPELINE_SOURCE = "parent_pipeline";

/** What the lint suggests for pipeline_source: the sources a deploy runs from, rather than a list of exclusions. */
const DEPLOY_SOURCES_EXAMPLE = "pipeline_source: [push, web, schedule]";

export function lintPolicy(policy: PolicyParts): LintFinding[] {
  const privileged = new Set(policy.targets.filter((t: Target) => t.privileged).map((t) => t.name));
  const acceptingLegacy = new Set(policy.issuers.filter((i) => i.accept_legacy_ci_job_jwt).map((i) => i.name));
  const issuers = new Map(policy.issuers.map((issuer) => [issuer.name, issuer]));
  return policy.rules.flatMap((rule) => [
    ...lintRule(rule, privileged, acceptingLegacy),
    // Capabilities: errors whatever the rule acknowledges (capability-lint.ts).
    ...lintCapabilityRule(rule, issuers.get(rule.issuer)).map((finding): LintFinding => ({ ...finding, severity: "error", rule })),
  ]);
}

function lintRule(rule: RuleSpec, privilegedTargets: ReadonlySet<string>, issuersAcceptingLegacy: ReadonlySet<string>): LintFinding[] {
  const findings: LintFinding[] = [];
  const add = (code: LintCode, at: Path, message: string, severity: LintFinding["severity"] = "error") =>
    findings.push({ code, severity, rule, at, message });
  const condition = (claim: string): Condition | undefined =>
    Object.hasOwn(rule.match, claim) ? compileCondition(claim, rule.match[claim]!) : undefined;
  const ack = rule.acknowledge ?? {};

  const scopedBy = SCOPE_CLAIMS.filter((claim) => Object.hasOwn(rule.match, claim) && isScoping(claim, rule.match[claim]!));
  const scoped = scopedBy.length > 0;
  // GitLab hands a path to whoever takes it after a rename, transfer or deletion; an id is never reused.
  const byPathOnly = scoped && !scopedBy.some((claim) => ID_CLAIMS.has(claim));
  if (!scoped && !ack.broad) {
    add(
      "no-scope",
      ["match"],
      `rule '${rule.name}' lets any project of issuer '${rule.issuer}' match: add project_id, project_path, namespace_id or namespace_path ` +
        "with a literal top-level group (e.g. 'platform/**'), or set acknowledge: { broad: true } if that is intended",
    );
  }
  if (scoped && ack.broad) add("unneeded-acknowledgement", ["acknowledge", "broad"], "acknowledge.broad is not needed: the rule is scoped", "warning");

  if (Object.hasOwn(rule.match, "ref")) {
    const refType = Object.hasOwn(rule.match, "ref_type") ? conditionParts(rule.match.ref_type!) : undefined;
    // One exact value: a list (`[branch, tag]`) lets a tag carry the branch's name just like no ref_type.
    if (!refType || refType.negated || refType.patterns.length !== 1 || refType.patterns[0]!.includes("*")) {
      add(
        "ref-without-ref-type",
        ["match", "ref"],
        "a tag can carry a branch's name (a tag 'main' is not the branch 'main'): add ref_type: branch (or tag) next to ref, " +
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
      `privileged target(s) ${reachesPrivileged.join(", ")} must not be reachable with legacy CI_JOB_JWT tokens, which carry no aud ` +
        `(any service a job ever sent one to could replay it): set accept_legacy_ci_job_jwt: false on issuer '${rule.issuer}', ` +
        "or remove these targets from the rule",
    );
  }
  if (reachesPrivileged.length > 0) {
    const names = reachesPrivileged.join(", ");
    const protectedRef = condition("ref_protected");
    const refOk = protectedRef !== undefined && protectedRef.matches("true") && !protectedRef.matches("false");
    const source = condition("pipeline_source");
    const sourceOk = source !== undefined && UNTRUSTED_PIPELINE_SOURCES.every((s) => !source.matches(s));
    if (!ack.unprotected) {
      if (!refOk) {
        add(
          "privileged-unprotected-ref",
          ["match"],
          `privileged target(s) ${names} must only be reachable from protected refs: add ref_protected: "true", ` +
            "or set acknowledge: { unprotected: true } if that is intended",
        );
      }
      if (!sourceOk) {
        add(
          "privileged-merge-requests",
          ["match"],
          `privileged target(s) ${names} must not be reachable from merge-request pipelines (which can run a fork's code): ` +
            `list the sources you deploy from (e.g. ${DEPLOY_SOURCES_EXAMPLE}), ` +
            "or set acknowledge: { unprotected: true } if that is intended",
        );
      }
    } else if (refOk && sourceOk) {
      add("unneeded-acknowledgement", ["acknowledge", "unprotected"], "acknowledge.unprotected is not needed: the rule already requires protected refs outside merge requests", "warning");
    }
    // Only acknowledge.child_pipelines silences this warning (acknowledge.unprotected is for the errors).
    const childPipelines = sourceOk && source.matches(CHILD_PIPELINE_SOURCE);
    if (childPipelines && !ack.child_pipelines) {
      add(
        "privileged-child-pipelines",
        ["match", "pipeline_source"],
        `privileged target(s) ${names} can be reached from child pipelines (pipeline_source ${CHILD_PIPELINE_SOURCE}), and the child ` +
          `pipelines of a merge-request pipeline run its code with that source too, so only ref_protected guards them: list the ` +
          `sources you deploy from (e.g. ${DEPLOY_SOURCES_EXAMPLE}), or set acknowledge: { child_pipelines: true } if child pipelines ` +
          "on protected refs need these targets",
        "warning",
      );
    } else if (!childPipelines && ack.child_pipelines) {
      const why = sourceOk
        ? "the rule's pipeline_source excludes child pipelines"
        : "its pipeline_source admits merge-request pipelines, which privileged-merge-requests is about";
      add("unneeded-acknowledgement", ["acknowledge", "child_pipelines"], `acknowledge.child_pipelines is not needed: ${why}`, "warning");
    }
    if (byPathOnly && !ack.path_scope) {
      const paths = scopedBy.map((claim) => `${claim} ${JSON.stringify(rule.match[claim])}`).join(", ");
      add(
        "privileged-path-scope",
        ["match", scopedBy[0]!],
        `privileged target(s) ${names} are reached by path alone (${paths}), and GitLab gives a path to another project after a ` +
          "rename, transfer or deletion: match project_id (or namespace_id, the id of the project's own group, not its subgroups'), " +
          "keeping the path next to it if you like (`gatepass policies explain` shows a job's ids), " +
          "or set acknowledge: { path_scope: true } if the path is meant",
        "warning",
      );
    } else if (!byPathOnly && ack.path_scope) {
      const why = scoped ? "the rule is scoped by project_id or namespace_id" : "the rule has no path scope";
      add("unneeded-acknowledgement", ["acknowledge", "path_scope"], `acknowledge.path_scope is not needed: ${why}`, "warning");
    }
  } else {
    for (const key of ["unprotected", "child_pipelines", "path_scope"] as const) {
      if (ack[key]) add("unneeded-acknowledgement", ["acknowledge", key], `acknowledge.${key} is not needed: the rule allows no privileged target`, "warning");
    }
  }
  return findings;
}

/** A positive condition whose every alternative pins a literal: an id without wildcards, or a path whose first segment is literal. */
function isScoping(claim: string, spec: RuleSpec["match"][string]): boolean {
  const { negated, patterns } = conditionParts(spec);
  if (negated) return false;
  return patterns.every((pattern) => {
    if (ID_CLAIMS.has(claim)) return !pattern.includes("*");
    const first = pattern.split("/")[0]!;
    return first.length > 0 && !first.includes("*");
  });
}

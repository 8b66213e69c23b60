// Refusals for rules that parse but are unsafe or broader than they look. Each refusal can only be
// silenced by the rule itself (acknowledge: { broad | unprotected: true }), so a reviewer sees it.

import type { RuleSpec, Target } from "../types";
import { SCOPE_CLAIMS } from "./compile";
import { compileCondition, conditionParts, type Condition } from "./condition";
import type { Path, PolicyParts } from "./schema";

export type LintCode =
  | "no-scope"
  | "ref-without-ref-type"
  | "privileged-unprotected-ref"
  | "privileged-merge-requests"
  | "privileged-legacy-tokens"
  | "unneeded-acknowledgement";

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

export function lintPolicy(policy: PolicyParts): LintFinding[] {
  const privileged = new Set(policy.targets.filter((t: Target) => t.privileged).map((t) => t.name));
  const acceptingLegacy = new Set(policy.issuers.filter((i) => i.accept_legacy_ci_job_jwt).map((i) => i.name));
  return policy.rules.flatMap((rule) => lintRule(rule, privileged, acceptingLegacy));
}

function lintRule(rule: RuleSpec, privilegedTargets: ReadonlySet<string>, issuersAcceptingLegacy: ReadonlySet<string>): LintFinding[] {
  const findings: LintFinding[] = [];
  const add = (code: LintCode, at: Path, message: string, severity: LintFinding["severity"] = "error") =>
    findings.push({ code, severity, rule, at, message });
  const condition = (claim: string): Condition | undefined =>
    Object.hasOwn(rule.match, claim) ? compileCondition(claim, rule.match[claim]!) : undefined;
  const ack = rule.acknowledge ?? {};

  const scoped = SCOPE_CLAIMS.some((claim) => Object.hasOwn(rule.match, claim) && isScoping(claim, rule.match[claim]!));
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
            `add pipeline_source: { not: [${UNTRUSTED_PIPELINE_SOURCES.join(", ")}] } or list the allowed sources, ` +
            "or set acknowledge: { unprotected: true } if that is intended",
        );
      }
    } else if (refOk && sourceOk) {
      add("unneeded-acknowledgement", ["acknowledge", "unprotected"], "acknowledge.unprotected is not needed: the rule already requires protected refs outside merge requests", "warning");
    }
  } else if (ack.unprotected) {
    add("unneeded-acknowledgement", ["acknowledge", "unprotected"], "acknowledge.unprotected is not needed: the rule allows no privileged target", "warning");
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

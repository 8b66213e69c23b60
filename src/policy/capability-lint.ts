// Lint for rules that grant gatepass's own capabilities (capabilities.ts). A capability is privileged by
// definition: whoever holds gatepass:policies-push decides who gets every other credential. So a rule
// granting one must require a protected ref, exclude the events that run code proposed from outside
// (merge requests, forks, pull requests) and be scoped by an id, and these are errors that no
// `acknowledge` silences. Which claims say so depends on the issuer kind: a kind without such claims
// cannot be granted a capability at all (fail closed).

import { idClaims, vocabularyOf } from "../verify/issuer-kinds/claim-vocabulary";
import type { IssuerConfig, RuleSpec } from "../types";
import { isCapability } from "./capabilities";
import { compileCondition, conditionParts } from "./rule-condition";
import type { Path } from "./policy-schema";

export type CapabilityLintCode =
  | "capability-issuer-kind"
  | "capability-unprotected-ref"
  | "capability-untrusted-events"
  | "capability-id-scope"
  | "capability-legacy-tokens";

/** What an issuer kind's tokens say about where a job runs, as the capability lint needs it. */
export interface CapabilityLintProfile {
  /** The claim, and its value, that say the job runs on a protected ref. */
  protectedClaim: string;
  protectedValue: string;
  /** Claims holding ids that the CI never reuses for another project or group. */
  idClaims: readonly string[];
  /** The claim naming the event that started the pipeline, and its values that run untrusted code. */
  eventClaim: string;
  untrustedEvents: readonly string[];
}

/**
 * The profile of an issuer's kind, from its claim vocabulary (src/verify/issuer-kinds/): GitLab's,
 * GitHub's, or a CI profile's. None (capabilities refused) for a kind: generic issuer without a
 * profile, and for a vocabulary that cannot say a ref is protected, which event ran, or ids.
 */
export function capabilityProfileFor(
  issuer: Pick<IssuerConfig, "kind" | "profile">,
): CapabilityLintProfile | undefined {
  if (issuer.kind === "generic" && !issuer.profile) return undefined;
  const vocabulary = vocabularyOf(issuer);
  const ids = idClaims(vocabulary);
  if (!vocabulary.protectedRef || !vocabulary.untrusted || ids.length === 0) return undefined;
  return {
    protectedClaim: vocabulary.protectedRef.claim,
    protectedValue: vocabulary.protectedRef.value,
    idClaims: ids,
    eventClaim: vocabulary.untrusted.claim,
    untrustedEvents: vocabulary.untrusted.values,
  };
}

export interface CapabilityFinding {
  code: CapabilityLintCode;
  at: Path;
  message: string;
}

/** Errors for one rule; none when it grants no capability. `issuer` is the rule's issuer (undefined: unknown). */
export function lintCapabilityRule(
  rule: RuleSpec,
  issuer: Pick<IssuerConfig, "kind" | "profile" | "accept_legacy_ci_job_jwt"> | undefined,
): CapabilityFinding[] {
  const granted = rule.allow.filter(isCapability);
  if (granted.length === 0) return [];
  const names = granted.join(", ");
  const findings: CapabilityFinding[] = [];
  const add = (code: CapabilityLintCode, at: Path, message: string) => findings.push({ code, at, message });
  const profile = issuer ? capabilityProfileFor(issuer) : undefined;
  if (!profile) {
    add(
      "capability-issuer-kind",
      ["allow"],
      `capability ${names} cannot be granted to issuer '${rule.issuer}': its kind has no claims gatepass knows to ` +
        `say a ref is protected ` +
        "which event started the pipeline, and ids; grant it to a kind: gitlab or github issuer (or a profile that " +
        "names these claims)",
    );
    return findings;
  }
  if (issuer?.accept_legacy_ci_job_jwt) {
    add(
      "capability-legacy-tokens",
      ["allow"],
      `capability ${names} must not be reachable with legacy CI_JOB_JWT tokens, which carry no aud (any service a ` +
        `job sent one to could replay it): ` +
        `set accept_legacy_ci_job_jwt: false on issuer '${rule.issuer}'`,
    );
  }
  const condition = (claim: string) =>
    Object.hasOwn(rule.match, claim) ? compileCondition(claim, rule.match[claim]!) : undefined;
  const protectedRef = condition(profile.protectedClaim);
  if (!protectedRef || !protectedRef.matches(profile.protectedValue) || protectedRef.matches("false")) {
    add(
      "capability-unprotected-ref",
      ["match"],
      `capability ${names} must only be reachable from protected refs: add ` +
        `${profile.protectedClaim}: "${profile.protectedValue}" (no acknowledgement silences this)`,
    );
  }
  const event = condition(profile.eventClaim);
  if (!event || profile.untrustedEvents.some((value) => event.matches(value))) {
    add(
      "capability-untrusted-events",
      ["match"],
      `capability ${names} must not be reachable from ${profile.untrustedEvents.join(" or ")} pipelines, which run ` +
        `code proposed from outside: ` +
        `list the events the policy pipeline runs from (e.g. ${profile.eventClaim}: [push, web]) (no ` +
        `acknowledgement silences this)`,
    );
  }
  if (!profile.idClaims.some((claim) => Object.hasOwn(rule.match, claim) && pinsLiteralIds(rule.match[claim]!))) {
    add(
      "capability-id-scope",
      ["match"],
      `capability ${names} must be scoped by ${profile.idClaims.join(" or ")} (exact ids: a path can pass to ` +
        `another project after a rename, ` +
        "transfer or deletion, an id never does) (no acknowledgement silences this)",
    );
  }
  return findings;
}

/** A positive condition whose every alternative is an exact id (no wildcard). */
function pinsLiteralIds(spec: RuleSpec["match"][string]): boolean {
  const { negated, patterns } = conditionParts(spec);
  return !negated && patterns.every((pattern) => !pattern.includes("*"));
}

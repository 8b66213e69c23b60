// Decisions from a compiled policy. Deny by default: a target is allowed only when some rule of the
// token's own issuer allows it and every one of that rule's conditions holds for the token's claims.
// Only the rules the index (rule-index.ts) finds for the token's claim values are looked at, so the cost
// follows the number of rules that can concern this token, not the policy size.

import { GatepassError } from "../errors";
import { MAX_EXPLAINED_RULES } from "../limits";
import type {
  ConditionFailure,
  Decision,
  Grant,
  NormalizedClaims,
  RuleExplanation,
  TargetExplanation,
  VerifiedIdentity,
} from "../types";
import type { Capability } from "./capabilities";
import type { CompiledPolicy, CompiledRule } from "./compile-policy";
import { claimValue } from "./rule-condition";
import { NAME_PATTERN as TARGET_NAME } from "./schema-patterns";

export { claimValue };

/** Throws GatepassError("target_unknown") for a target that is not configured. Deny by default. */
export function evaluate(policy: CompiledPolicy, identity: VerifiedIdentity, target: string): Decision {
  requireTarget(policy, target);
  let best: CompiledRule | undefined;
  policy.candidates(identity.issuer, identity.claims, (order) => {
    if (best && order >= best.order) return;
    const rule = policy.ruleOf(identity.issuer, order);
    if (rule.allows.has(target) && ruleMatches(rule, identity.claims)) best = rule;
  });
  return best ? { allowed: true, target, rule: best.name } : { allowed: false, target };
}

/** Every target this token may use, each with the first rule (in policy order) that grants it; sorted by target. */
export function grantsFor(policy: CompiledPolicy, identity: VerifiedIdentity): Grant[] {
  const granted = new Map<string, CompiledRule>();
  for (const rule of candidateRules(policy, identity)) {
    if (!ruleMatches(rule, identity.claims)) continue;
    for (const target of rule.allows) {
      const current = granted.get(target);
      if (!current || rule.order < current.order) granted.set(target, rule);
    }
  }
  return [...granted]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([target, rule]) => ({ target, rule: rule.name }));
}

export interface CapabilityGrant {
  allowed: boolean;
  capability: Capability;
  /** The first rule (in policy order) that grants it. */
  rule?: string;
}

/**
 * Whether the policy grants one of gatepass's own capabilities (capabilities.ts) to this verified
 * identity: the same deny-by-default evaluation as a target, without the target lookup that would
 * refuse the name.
 */
export function grantsCapability(
  policy: CompiledPolicy,
  identity: VerifiedIdentity,
  capability: Capability,
): CapabilityGrant {
  let best: CompiledRule | undefined;
  policy.candidates(identity.issuer, identity.claims, (order) => {
    if (best && order >= best.order) return;
    const rule = policy.ruleOf(identity.issuer, order);
    if (rule.allows.has(capability) && ruleMatches(rule, identity.claims)) best = rule;
  });
  return best ? { allowed: true, capability, rule: best.name } : { allowed: false, capability };
}

/**
 * Which rules an explanation looks at: `candidates`, the rules the index finds for this token (those
 * whose filed condition, normally the project or namespace scope, its values meet: what the Worker's
 * whoami shows, at the cost of an evaluation); `all`, every rule of the issuer that allows the target
 * (the CLI, offline).
 */
export type ExplainScope = "candidates" | "all";

/** For one target: the rules (of the token's issuer) that allow it, and for each the conditions that
 *  failed in terms of the token's own claims only (never the rule's patterns). The closest rules come
 *  first and at most MAX_EXPLAINED_RULES are listed. */
export function explainTarget(
  policy: CompiledPolicy,
  identity: VerifiedIdentity,
  target: string,
  scope: ExplainScope = "all",
): TargetExplanation {
  requireTarget(policy, target);
  const rules =
    scope === "all"
      ? policy.rulesAllowing(identity.issuer, target)
      : candidateRules(policy, identity).filter((rule) => rule.allows.has(target));
  const explained = rules.map((rule): RuleExplanation & { order: number } => {
    const failures: ConditionFailure[] = [];
    for (const condition of rule.conditions) {
      const actual = claimValue(identity.claims, condition.claim);
      if (!condition.matches(actual)) failures.push({ claim: condition.claim, actual: actual ?? null });
    }
    return { rule: rule.name, matched: failures.length === 0, failures, order: rule.order };
  });
  const granting = explained.reduce<(typeof explained)[number] | undefined>(
    (first, r) => (r.matched && (!first || r.order < first.order) ? r : first),
    undefined,
  );
  explained.sort((a, b) => a.failures.length - b.failures.length || a.order - b.order);
  const shown = explained.slice(0, MAX_EXPLAINED_RULES).map(({ order: _order, ...rest }) => rest);
  return {
    target,
    allowed: granting !== undefined,
    ...(granting ? { rule: granting.rule } : {}),
    rules: shown,
    ...(explained.length > shown.length ? { omitted: explained.length - shown.length } : {}),
  };
}

/**
 * Denial error: GatepassError("policy_denied") whose description names the target and the token's project_path, ref
 * and ref_type.
 */
export function denialError(identity: VerifiedIdentity, target: string): GatepassError {
  const show = (claim: string) => {
    const value = claimValue(identity.claims, claim);
    const text = value === undefined ? "(none)" : typeof value === "string" ? value : value.join(",");
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  };
  return new GatepassError("policy_denied", {
    description:
      `No policy rule lets project '${show("project_path")}' (ref '${show("ref")}', ref_type ` +
      `'${show("ref_type")}') use target '${target}'. ` +
      `GET /v1/whoami?target=${target} shows which conditions this job does not meet; an admin can add a rule in ` +
      `policies/.`,
    details: { target },
  });
}

function requireTarget(policy: CompiledPolicy, target: string): void {
  if (policy.targets.has(target)) return;
  throw new GatepassError("target_unknown", {
    // Echo the name only when it is a plausible target name: never reflect arbitrary input.
    description: TARGET_NAME.test(target)
      ? `No target named '${target}' is configured.`
      : "No target of that name is configured.",
  });
}

/** The rules the index finds for this token, each once. */
function candidateRules(policy: CompiledPolicy, identity: VerifiedIdentity): CompiledRule[] {
  const seen = new Set<number>();
  const rules: CompiledRule[] = [];
  policy.candidates(identity.issuer, identity.claims, (order) => {
    if (seen.has(order)) return;
    seen.add(order);
    rules.push(policy.ruleOf(identity.issuer, order));
  });
  return rules;
}

function ruleMatches(rule: CompiledRule, claims: NormalizedClaims): boolean {
  for (const condition of rule.conditions) if (!condition.matches(claimValue(claims, condition.claim))) return false;
  return true;
}

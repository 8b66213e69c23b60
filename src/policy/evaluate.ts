// Decisions from a compiled policy. Deny by default: a target is allowed only when some rule of the
// token's own issuer allows it and every one of that rule's conditions holds for the token's claims.
// Only the index buckets for the token's project/namespace values and the issuer's scanned rules are
// looked at, so the cost follows the number of rules that can concern this token, not the policy size.

import { GatepassError } from "../errors";
import { MAX_CLAIM_ARRAY_LENGTH, MAX_EXPLAINED_RULES } from "../limits";
import type { ConditionFailure, Decision, Grant, NormalizedClaims, RuleExplanation, TargetExplanation, VerifiedIdentity } from "../types";
import type { ClaimValue } from "./condition";
import { SCOPE_CLAIMS, indexKey, type CompiledPolicy, type CompiledRule } from "./compile";
import { NAME_PATTERN as TARGET_NAME } from "./schema";

/** Throws GatepassError("target_unknown") for a target that is not configured. Deny by default. */
export function evaluate(policy: CompiledPolicy, identity: VerifiedIdentity, target: string): Decision {
  requireTarget(policy, target);
  let best: CompiledRule | undefined;
  visitCandidates(policy, identity, (rule) => {
    if (best && rule.order >= best.order) return;
    if (rule.allows.has(target) && ruleMatches(rule, identity.claims)) best = rule;
  });
  return best ? { allowed: true, target, rule: best.name } : { allowed: false, target };
}

/** Every target this token may use, each with the first rule (in policy order) that grants it; sorted by target. */
export function grantsFor(policy: CompiledPolicy, identity: VerifiedIdentity): Grant[] {
  const granted = new Map<string, CompiledRule>();
  visitCandidates(policy, identity, (rule) => {
    if (!ruleMatches(rule, identity.claims)) return;
    for (const target of rule.allows) {
      const current = granted.get(target);
      if (!current || rule.order < current.order) granted.set(target, rule);
    }
  });
  return [...granted]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([target, rule]) => ({ target, rule: rule.name }));
}

/** For one target: the rules (of the token's issuer) that allow it, and for each the conditions that
 *  failed in terms of the token's own claims only (never the rule's patterns). The closest rules come
 *  first and at most MAX_EXPLAINED_RULES are listed. */
export function explainTarget(policy: CompiledPolicy, identity: VerifiedIdentity, target: string): TargetExplanation {
  requireTarget(policy, target);
  const rules = policy.rulesByIssuer.get(identity.issuer)?.byTarget.get(target) ?? [];
  const explained = rules.map((rule): RuleExplanation & { order: number } => {
    const failures: ConditionFailure[] = [];
    for (const condition of rule.conditions) {
      const actual = claimValue(identity.claims, condition.claim);
      if (!condition.matches(actual)) failures.push({ claim: condition.claim, actual: actual ?? null });
    }
    return { rule: rule.name, matched: failures.length === 0, failures, order: rule.order };
  });
  const granting = explained.find((r) => r.matched);
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

/** Denial error: GatepassError("policy_denied") whose description names the target and the token's project_path, ref and ref_type. */
export function denialError(identity: VerifiedIdentity, target: string): GatepassError {
  const show = (claim: string) => {
    const value = claimValue(identity.claims, claim);
    const text = value === undefined ? "(none)" : typeof value === "string" ? value : value.join(",");
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  };
  return new GatepassError("policy_denied", {
    description:
      `No policy rule lets project '${show("project_path")}' (ref '${show("ref")}', ref_type '${show("ref_type")}') use target '${target}'. ` +
      `GET /v1/whoami?target=${target} shows which conditions this job does not meet; an admin can add a rule in policies/.`,
    details: { target },
  });
}

function requireTarget(policy: CompiledPolicy, target: string): void {
  if (policy.targets.has(target)) return;
  throw new GatepassError("target_unknown", {
    // Echo the name only when it is a plausible target name: never reflect arbitrary input.
    description: TARGET_NAME.test(target) ? `No target named '${target}' is configured.` : "No target of that name is configured.",
  });
}

/** Calls `visit` with every rule that can concern this token: its index buckets, then the scanned rules. */
function visitCandidates(policy: CompiledPolicy, identity: VerifiedIdentity, visit: (rule: CompiledRule) => void): void {
  const rules = policy.rulesByIssuer.get(identity.issuer);
  if (!rules) return;
  for (const claim of SCOPE_CLAIMS) {
    const value = claimValue(identity.claims, claim);
    if (value === undefined) continue;
    for (const element of typeof value === "string" ? [value] : value) {
      const bucket = rules.exact.get(indexKey(claim, element));
      if (bucket) for (const rule of bucket) visit(rule);
    }
  }
  for (const rule of rules.scanned) visit(rule);
}

function ruleMatches(rule: CompiledRule, claims: NormalizedClaims): boolean {
  for (const condition of rule.conditions) if (!condition.matches(claimValue(claims, condition.claim))) return false;
  return true;
}

/** A claim as a string or string array; anything else (or an inherited property) counts as missing. */
export function claimValue(claims: NormalizedClaims, claim: string): ClaimValue {
  if (!Object.hasOwn(claims, claim)) return undefined;
  const value: unknown = claims[claim];
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.length <= MAX_CLAIM_ARRAY_LENGTH && value.every((e) => typeof e === "string")) return value as string[];
  return undefined;
}

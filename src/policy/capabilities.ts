// gatepass's own admin capabilities, granted to CI identities by ordinary rules next to targets
// (`allow: [gatepass:policies-push]`). The ':' keeps them apart from target names, which cannot
// contain it, so no target can be defined with a capability's name and the exchange endpoints keep
// refusing them (target_unknown). They are privileged by definition (capability-lint.ts).

import type { NormalizedClaims, VerifiedIdentity } from "../types";
import type { CompiledPolicy } from "./compile-policy";
import { claimValue, type Condition } from "./rule-condition";

export const CAPABILITIES = {
  /** Push a policy version and roll back (PUT /v1/admin/policies, POST /v1/admin/policies/rollback). */
  "gatepass:policies-push": "push a policy version or roll back",
  /** Read the active version's text, its history and the seen identities: what a remote plan needs. */
  "gatepass:policies-plan": "read the active policy, its history and the identities gatepass has seen",
  "gatepass:audit-read": "read the audit log",
  "gatepass:status-read": "read gatepass's status",
} as const;

export type Capability = keyof typeof CAPABILITIES;

export const CAPABILITY_PREFIX = "gatepass:";

export function isCapability(name: string): name is Capability {
  return Object.hasOwn(CAPABILITIES, name);
}

/** A rule's allow entry that names something under gatepass: which is not a capability: the message for it. */
export function unknownCapabilityProblem(name: string): string | undefined {
  if (!name.startsWith(CAPABILITY_PREFIX) || isCapability(name)) return undefined;
  return `'${name}' is not a gatepass capability; the capabilities are ${Object.keys(CAPABILITIES).join(", ")}`;
}

export interface CapabilityGrant {
  allowed: boolean;
  capability: Capability;
  /** The first rule (in policy order) that grants it. */
  rule?: string;
}

/**
 * Whether the active policy grants `capability` to this verified identity: the same deny-by-default
 * evaluation as a target (evaluate()), without the target lookup that would refuse the name.
 */
export function grantsCapability(policy: CompiledPolicy, identity: VerifiedIdentity, capability: Capability): CapabilityGrant {
  let best: { order: number; name: string } | undefined;
  policy.candidates(identity.issuer, identity.claims, (order) => {
    if (best && order >= best.order) return;
    const rule = policy.ruleOf(identity.issuer, order);
    if (rule.allows.has(capability) && matchesAll(rule.conditions, identity.claims)) best = { order, name: rule.name };
  });
  return best ? { allowed: true, capability, rule: best.name } : { allowed: false, capability };
}

function matchesAll(conditions: readonly Condition[], claims: NormalizedClaims): boolean {
  for (const condition of conditions) if (!condition.matches(claimValue(claims, condition.claim))) return false;
  return true;
}

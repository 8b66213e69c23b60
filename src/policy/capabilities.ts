// gatepass's own admin capabilities, granted to CI identities by ordinary rules next to targets
// (`allow: [gatepass:policies-push]`). The ':' keeps them apart from target names, which cannot
// contain it, so no target can be defined with a capability's name and the exchange endpoints keep
// refusing them (target_unknown). They are privileged by definition (capability-lint.ts).

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

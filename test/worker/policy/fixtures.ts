// Shared test fixtures: a small policy written as YAML sources, compiled the way `policies push` does,
// and GitLab-shaped identities.
import { compilePolicy, type CompiledPolicy } from "../../../src/policy/compile-policy";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import { checkPolicySources, formatFinding, type SourceFile } from "../../../src/policy/policy-source";
import type { PolicySnapshot, VerifiedIdentity } from "../../../src/types";

export const ISSUERS_YAML = `issuers:
  - name: corp-gitlab
    url: https://gitlab.example.com
    audiences: [https://gatepass.example.com]
  - name: other-gitlab
    url: https://gitlab.other.example
    audiences: [https://gatepass.example.com]
`;

export const TARGETS_YAML = `targets:
  - name: deployer
    type: gcp
    privileged: true
    workload_identity_provider: projects/1/locations/global/workloadIdentityPools/pool/providers/prov
  - name: reader
    type: aws
    role_arn: arn:aws:iam::123456789012:role/reader
  - name: registry
    type: oidc
    audience: https://registry.example.com
`;

export const RULES_YAML = `rules:
  - name: infra-main
    issuer: corp-gitlab
    match:
      project_path: platform/infra
      ref_type: branch
      ref: main
      ref_protected: "true"
      pipeline_source: [push, web, schedule]
    allow: [deployer, reader]
  - name: platform-reads
    issuer: corp-gitlab
    match: { namespace_path: "platform/**", pipeline_source: { not: merge_request_event } }
    allow: [reader]
  - name: groups
    issuer: corp-gitlab
    match: { namespace_path: "apps/**", groups_direct: "apps/registry-*" }
    allow: [registry]
`;

export function sources(overrides: Partial<Record<"issuers" | "targets" | "rules", string>> = {}): SourceFile[] {
  return [
    { name: "issuers.yaml", text: overrides.issuers ?? ISSUERS_YAML },
    { name: "rules.yaml", text: overrides.rules ?? RULES_YAML },
    { name: "targets.yaml", text: overrides.targets ?? TARGETS_YAML },
  ];
}

/** Findings of a policy as `file:line: message` lines. */
export const problemsOf = (overrides: Parameters<typeof sources>[0]): string[] =>
  checkPolicySources(sources(overrides)).findings.map((f) => `${f.file}:${f.line}: ${f.message}`);

/** The checked (uncompiled) policy of the fixture sources with `overrides`; throws with the findings. */
export function checkedPolicyOf(overrides: Parameters<typeof sources>[0] = {}) {
  const checked = checkPolicySources(sources(overrides));
  if (!checked.policy) throw new Error(checked.findings.map(formatFinding).join("\n"));
  return checked.policy;
}

export const DIGEST = "0".repeat(64);
export const CREATED_AT = "2026-01-01T00:00:00.000Z";

/** Builds the snapshot of valid sources; throws with the findings otherwise. */
export async function snapshotOf(files: SourceFile[] = sources()): Promise<{ snapshot: PolicySnapshot; text: string }> {
  const checked = checkPolicySources(files);
  if (!checked.policy) throw new Error(checked.findings.map(formatFinding).join("\n"));
  return buildSnapshot(checked.policy, { sourceDigest: DIGEST, createdAt: CREATED_AT });
}

export async function policyOf(files?: SourceFile[]): Promise<CompiledPolicy> {
  return compilePolicy((await snapshotOf(files)).snapshot);
}

export const INFRA_MAIN = {
  project_id: "101",
  project_path: "platform/infra",
  namespace_id: "10",
  namespace_path: "platform",
  ref: "main",
  ref_type: "branch",
  ref_protected: "true",
  pipeline_source: "push",
} as const;

export function identity(
  claims: Record<string, string | readonly string[]> = INFRA_MAIN,
  issuer = "corp-gitlab",
): VerifiedIdentity {
  return {
    issuer,
    issuerUrl: issuer === "corp-gitlab" ? "https://gitlab.example.com" : "https://gitlab.other.example",
    claims,
    tokenSha256: "a".repeat(64),
    issuedAt: 1_700_000_000,
    expiresAt: 1_700_000_300,
    legacy: false,
  };
}

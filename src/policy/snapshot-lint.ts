// The lint errors of a snapshot that loadSnapshot accepted. Lint runs at push time only, and its rules
// grow (a version pushed before a check existed may break it): a rollback must not revive, and the
// Worker's admin push must not accept, what the CLI's push would refuse.

import { lintPolicy } from "./policy-lint";
import { normalizePolicy } from "./policy-schema";

export function snapshotLintErrors(text: string): string[] {
  const { issuers, targets, rules } = JSON.parse(text) as Record<string, unknown>;
  const { policy } = normalizePolicy([{ name: "snapshot", value: { issuers, targets, rules } }], "snapshot");
  return lintPolicy(policy)
    .filter((finding) => finding.severity === "error")
    .map((finding) => `rule '${finding.rule.name}': ${finding.code}: ${finding.message}`);
}

// The example policies (policies/) get copied into production, so they must show the safe way: no lint
// finding at all, no acknowledgement without a comment saying why, and every target that pushes,
// deploys, writes or hands out secrets privileged (so lint guards each rule that reaches it).
import path from "node:path";
import { describe, expect, it } from "vitest";
import { isMap, isScalar, isSeq, parseDocument } from "yaml";
import { readPolicyDir } from "../../cli/policy/policy-files";
import { checkPolicySources, formatFinding, type SourceFile } from "../../src/policy/policy-source";

const POLICIES = path.resolve(import.meta.dirname, "../../policies");

/** Targets that may stay ordinary, each with the reason; any other example target must be privileged. */
const NOT_PRIVILEGED = {
  "aws-readonly": "its role only reads",
  "demo-oidc": "a local demo token whose audience nothing trusts",
};

/** `file: rule NAME` for every rule whose acknowledge: has no comment on or right above it. */
function unexplainedAcknowledgements(files: readonly SourceFile[]): string[] {
  const found: string[] = [];
  for (const file of files) {
    const rules = parseDocument(file.text).get("rules", true);
    if (!isSeq(rules)) continue;
    for (const rule of rules.items) {
      if (!isMap(rule)) continue;
      const pair = rule.items.find((p) => isScalar(p.key) && p.key.value === "acknowledge");
      if (!pair) continue;
      const key = pair.key as { commentBefore?: string | null };
      const value = pair.value as { comment?: string | null; commentBefore?: string | null } | null;
      if (![key.commentBefore, value?.comment, value?.commentBefore].some((c) => c?.trim()))
        found.push(`${file.name}: rule ${String(rule.get("name"))}`);
    }
  }
  return found;
}

describe("the example policies", () => {
  it("pass validation and lint with no finding, warnings included", async () => {
    const { sources } = await readPolicyDir(POLICIES);
    const checked = checkPolicySources(sources);
    expect(checked.findings.map(formatFinding)).toEqual([]);
    expect(checked.policy).toBeDefined();
  });

  it("explain every acknowledgement they use in a comment", async () => {
    const { sources } = await readPolicyDir(POLICIES);
    expect(unexplainedAcknowledgements(sources)).toEqual([]);
    // The check itself sees an acknowledgement without a comment, and accepts one with.
    const rule = (ack: string) => `rules:\n  - name: r\n    match: { ref_type: tag }\n${ack}`;
    expect(unexplainedAcknowledgements([{ name: "x.yaml", text: rule("    acknowledge: { broad: true }\n") }])).toEqual(
      ["x.yaml: rule r"],
    );
    expect(
      unexplainedAcknowledgements([
        { name: "x.yaml", text: rule("    acknowledge: { broad: true } # every project's tags\n") },
      ]),
    ).toEqual([]);
    expect(
      unexplainedAcknowledgements([
        { name: "x.yaml", text: rule("    # every project's tags\n    acknowledge: { broad: true }\n") },
      ]),
    ).toEqual([]);
  });

  it("make every target privileged except the read-only ones named here, registry-push included", async () => {
    const { sources } = await readPolicyDir(POLICIES);
    const { policy } = checkPolicySources(sources);
    const ordinary = policy!.targets.filter((t) => !t.privileged).map((t) => t.name);
    expect(ordinary.sort()).toEqual(Object.keys(NOT_PRIVILEGED).sort());
    expect(policy!.targets.find((t) => t.name === "registry-push")?.privileged).toBe(true);
  });
});

// `gatepass deploy` step 2: the policies are valid and their tests pass, checked locally before anything remote
// changes.

import { formatFinding } from "../../src/policy/policy-source";
import { checkPolicyDir } from "../policy/policy-files";
import { parseTestFiles, runCase } from "../policy/policy-tests";
import { StepFailure } from "./deploy-step";

export async function checkPolicies(dir: string): Promise<string> {
  const checked = await checkPolicyDir(dir);
  const errors = checked.findings.filter((finding) => finding.severity === "error");
  if (!checked.ok)
    throw new StepFailure(`the policies in ${dir}/ are invalid:\n${errors.map(formatFinding).join("\n")}`);
  const { cases, findings } = parseTestFiles(checked.dir.tests, checked.policy);
  if (findings.length > 0)
    throw new StepFailure(`the policy tests in ${dir}/ do not parse:\n${findings.map(formatFinding).join("\n")}`);
  const failed = cases.filter((testCase) => runCase(checked.policy, testCase).failures.length > 0);
  if (failed.length > 0) {
    throw new StepFailure(
      `${failed.length} of ${cases.length} policy tests fail: ` +
        `${failed.map((c) => `${c.file}:${c.line} ${c.name}`).join("; ")}`,
    );
  }
  const { issuers, targets, rules, version } = checked.snapshot;
  // The example policies' stand-in issuer is for `npm run dev`; a deployed Worker refuses it.
  const localOnly = issuers.filter((issuer) => issuer.url.startsWith("http://")).map((issuer) => issuer.name);
  return (
    `${issuers.length} issuers, ${targets.length} targets, ${rules.length} rules (version ${version.slice(0, 12)}); ` +
    `${cases.length === 0 ? "no policy tests" : `${cases.length}/${cases.length} tests pass`}` +
    (localOnly.length > 0
      ? `; note: ${localOnly.join(", ")} ${localOnly.length === 1 ? "uses" : "use"} http://, which only local runs ` +
        `accept`
      : "")
  );
}

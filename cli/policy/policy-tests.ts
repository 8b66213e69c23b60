// Policy tests (`policies/*.test.yaml`), in the spirit of `opa test`: each case gives claims (or a
// token) and the expected decision per target, optionally the rule expected to grant it.
//
//   cases:
//     - name: main of platform/infra deploys
//       issuer: corp-gitlab            # optional when the claims carry iss, or with token:
//       claims: { project_path: platform/infra, ref: main, ... }
//       expect:
//         gcp-deployer: { allow: infra-main-deploys }
//         aws-readonly: allow
//         azure-deployer: deny

import { isPlainObject } from "../../src/encoding";
import { isCapability } from "../../src/policy/capabilities";
import type { Expectation, TestCase } from "../../src/policy/case-runner";
import type { CompiledPolicy } from "../../src/policy/compile-policy";
import { parseYaml, type Finding, type SourceFile } from "../../src/policy/policy-source";
import type { Path } from "../../src/policy/policy-schema";
import { decodeTokenPayload } from "./offline-identity";

export type { CaseResult, Expectation, TestCase } from "../../src/policy/case-runner";
export { runCase } from "../../src/policy/case-runner";

const CASE_KEYS = new Set(["name", "issuer", "claims", "token", "expect"]);

/** Parses test files strictly; problems come back as findings with file and line. */
export function parseTestFiles(
  files: readonly SourceFile[],
  policy: CompiledPolicy,
): { cases: TestCase[]; findings: Finding[] } {
  const cases: TestCase[] = [];
  const findings: Finding[] = [];
  for (const file of files) {
    const parsed = parseYaml(file);
    findings.push(...parsed.errors);
    if (parsed.errors.length > 0) continue;
    const problem = (path: Path, message: string, atKey = false) =>
      findings.push({ file: file.name, ...parsed.locate(path, atKey), severity: "error", message });
    const doc = parsed.value;
    if (!isPlainObject(doc) || !Array.isArray(doc.cases) || Object.keys(doc).some((k) => k !== "cases")) {
      problem([], "a policy test file is a mapping with one key, cases: a list of test cases");
      continue;
    }
    const names = new Set<string>();
    doc.cases.forEach((raw, index) => {
      const at = (...rest: (string | number)[]): Path => ["cases", index, ...rest];
      const before = findings.length;
      if (!isPlainObject(raw))
        return void problem(at(), "a test case is a mapping with name, claims (or token) and expect");
      for (const key of Object.keys(raw))
        if (!CASE_KEYS.has(key)) problem(at(key), `unknown key '${key}'; expected ${[...CASE_KEYS].join(", ")}`, true);
      const name = raw.name;
      if (typeof name !== "string" || name.length === 0) problem(at("name"), "every case needs a name");
      else if (names.has(name)) problem(at("name"), `duplicate case name '${name}'`);
      else names.add(name);
      if (raw.issuer !== undefined && typeof raw.issuer !== "string") problem(at("issuer"), "issuer is an issuer name");

      let claims: Record<string, unknown> = {};
      if ((raw.claims === undefined) === (raw.token === undefined))
        problem(at(), "give exactly one of claims or token");
      else if (raw.claims !== undefined) {
        if (isPlainObject(raw.claims)) claims = raw.claims;
        else problem(at("claims"), "claims is a mapping of claim names to values");
      } else {
        try {
          if (typeof raw.token !== "string") throw new Error("token is a compact JWT string");
          claims = decodeTokenPayload(raw.token);
        } catch (err) {
          problem(at("token"), (err as Error).message);
        }
      }

      const expect = new Map<string, Expectation>();
      if (!isPlainObject(raw.expect) || Object.keys(raw.expect).length === 0)
        problem(at("expect"), "expect maps targets to allow, deny or { allow: RULE }");
      else {
        for (const [target, value] of Object.entries(raw.expect)) {
          if (!policy.targets.has(target) && !isCapability(target))
            problem(at("expect", target), `unknown target '${target}'`, true);
          else if (value === "allow") expect.set(target, { allow: true });
          else if (value === "deny") expect.set(target, { allow: false });
          else if (isPlainObject(value) && Object.keys(value).length === 1 && typeof value.allow === "string") {
            if (!policy.snapshot.rules.some((r) => r.name === value.allow))
              problem(at("expect", target, "allow"), `unknown rule '${value.allow}'`);
            else expect.set(target, { allow: true, rule: value.allow });
          } else problem(at("expect", target), "expected allow, deny or { allow: RULE }");
        }
      }
      if (findings.length > before) return;
      cases.push({
        file: file.name,
        line: parsed.locate(at()).line,
        name: name as string,
        ...(typeof raw.issuer === "string" ? { issuer: raw.issuer } : {}),
        claims,
        expect,
      });
    });
  }
  return { cases, findings };
}

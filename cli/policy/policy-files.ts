// Reading a policy directory: policy files (*.yaml, *.yml) and policy tests (*.test.yaml), in name order.

import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { compilePolicy, type CompiledPolicy } from "../../src/policy/compile-policy";
import { buildSnapshot, sourceDigest } from "../../src/policy/snapshot-format";
import { checkPolicySources, type Finding, type SourceFile } from "../../src/policy/policy-source";
import type { PolicySnapshot } from "../../src/types";

export interface PolicyDir {
  sources: SourceFile[];
  tests: SourceFile[];
  /** Digest of the policy files as read (not the tests). */
  digest: string;
}

const isTest = (name: string) => /\.test\.ya?ml$/.test(name);

export async function readPolicyDir(dir: string): Promise<PolicyDir> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch {
    throw new Error(`cannot read the policy directory '${dir}'`);
  }
  const files = await Promise.all(names.map(async (name) => ({ name, bytes: await readFile(path.join(dir, name)) })));
  const policyFiles = files.filter((f) => !isTest(f.name));
  if (policyFiles.length === 0) throw new Error(`no policy files (*.yaml) in '${dir}'`);
  const asSource = (f: { name: string; bytes: Buffer }): SourceFile => ({
    name: f.name,
    text: f.bytes.toString("utf8"),
  });
  return {
    sources: policyFiles.map(asSource),
    tests: files.filter((f) => isTest(f.name)).map(asSource),
    digest: await sourceDigest(policyFiles),
  };
}

export type Checked =
  | { ok: true; findings: Finding[]; dir: PolicyDir; snapshot: PolicySnapshot; text: string; policy: CompiledPolicy }
  | { ok: false; findings: Finding[] };

/** Validates and lints a policy directory and, when it is clean, builds its snapshot. */
export async function checkPolicyDir(dir: string, createdAt = new Date().toISOString()): Promise<Checked> {
  const files = await readPolicyDir(dir);
  const checked = checkPolicySources(files.sources);
  if (!checked.policy) return { ok: false, findings: checked.findings };
  const { snapshot, text } = await buildSnapshot(checked.policy, { sourceDigest: files.digest, createdAt });
  return { ok: true, findings: checked.findings, dir: files, snapshot, text, policy: compilePolicy(snapshot) };
}

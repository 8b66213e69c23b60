// Policy test cases run against a compiled policy: claims (as GitLab sends them) and the decision
// expected per target or capability. Pure, so the CLI (cases from *.test.yaml, cli/policy/test-cases.ts)
// and the Worker's admin push (cases sent as JSON with the snapshot) run the very same checks.

import { isPlainObject } from "../encoding";
import type { IssuerConfig, VerifiedIdentity } from "../types";
import { normalizeClaims } from "../verify/claim-normalisation";
import { canonicalIssuerUrl } from "../verify/issuer-url";
import { isCapability } from "./capabilities";
import type { CompiledPolicy } from "./compile-policy";
import { evaluate, explainTarget, grantsCapability } from "./evaluate";

export type Expectation = { allow: true; rule?: string } | { allow: false };

export interface TestCase {
  file: string;
  line: number;
  name: string;
  issuer?: string;
  claims: Record<string, unknown>;
  expect: Map<string, Expectation>;
}

export interface CaseResult {
  testCase: TestCase;
  /** Empty when the case passed. */
  failures: string[];
}

/** The issuer named, or the one whose URL or alias is the claims' `iss`, or the only one configured. */
export function resolveIssuer(issuers: readonly IssuerConfig[], name: string | undefined, iss: unknown): IssuerConfig {
  if (name !== undefined) {
    const issuer = issuers.find((i) => i.name === name);
    if (!issuer) throw new Error(`unknown issuer '${name}'; configured: ${issuers.map((i) => i.name).join(", ")}`);
    return issuer;
  }
  if (typeof iss === "string") {
    const url = canonicalIssuerUrl(iss);
    const issuer = issuers.find((i) => i.url === url || (url !== undefined && i.aliases.includes(url)));
    if (!issuer) throw new Error(`no configured issuer has the URL '${iss}'`);
    return issuer;
  }
  if (issuers.length === 1) return issuers[0]!;
  throw new Error("say which issuer the claims come from (issuer name, or an iss claim)");
}

/** An identity for offline evaluation: the claims normalised by the Worker's own code, no signature. */
export function offlineIdentity(issuer: IssuerConfig, raw: Record<string, unknown>): VerifiedIdentity {
  const claims = normalizeClaims(raw, issuer.kind);
  const seconds = (name: string) => (typeof raw[name] === "number" ? (raw[name] as number) : 0);
  return {
    issuer: issuer.name,
    issuerUrl: issuer.url,
    claims,
    tokenSha256: "",
    issuedAt: seconds("iat"),
    expiresAt: seconds("exp"),
    legacy: false,
  };
}

export function runCase(policy: CompiledPolicy, testCase: TestCase): CaseResult {
  let identity;
  try {
    identity = offlineIdentity(resolveIssuer(policy.issuers, testCase.issuer, testCase.claims.iss), testCase.claims);
  } catch (err) {
    return { testCase, failures: [(err as Error).message] };
  }
  const failures: string[] = [];
  for (const [target, expected] of testCase.expect) {
    if (!isCapability(target) && !policy.targets.has(target)) {
      failures.push(`${target}: unknown target`);
      continue;
    }
    const decision = isCapability(target)
      ? grantsCapability(policy, identity, target)
      : evaluate(policy, identity, target);
    if (expected.allow && !decision.allowed) {
      const closest = isCapability(target) ? undefined : explainTarget(policy, identity, target).rules[0];
      const why = closest
        ? ` (closest rule '${closest.rule}' fails on ` +
          `${closest.failures.map((f) => `${f.claim}=${JSON.stringify(f.actual)}`).join(", ")})`
        : " (no rule of this issuer allows the target)";
      failures.push(`${target}: expected allow, got deny${why}`);
    } else if (!expected.allow && decision.allowed) {
      failures.push(`${target}: expected deny, got allow by rule '${decision.rule}'`);
    } else if (expected.allow && expected.rule && decision.allowed && decision.rule !== expected.rule) {
      failures.push(`${target}: expected allow by rule '${expected.rule}', got allow by rule '${decision.rule}'`);
    }
  }
  return { testCase, failures };
}

/** At most this many cases travel with one push. */
export const MAX_PUSHED_CASES = 10_000;

/**
 * Cases as the CLI sends them with a push (JSON: name, issuer?, claims, expect: { target: "allow" |
 * "deny" | { allow: RULE } }), read strictly; throws an Error saying what is wrong.
 */
export function readJsonCases(value: unknown): TestCase[] {
  if (!Array.isArray(value)) throw new Error("tests is a list of cases");
  if (value.length > MAX_PUSHED_CASES) throw new Error(`at most ${MAX_PUSHED_CASES} test cases travel with a push`);
  return value.map((raw, index): TestCase => {
    const where = `test case ${index + 1}`;
    if (!isPlainObject(raw) || Object.keys(raw).some((key) => !["name", "issuer", "claims", "expect"].includes(key)))
      throw new Error(`${where} has keys other than name, issuer, claims, expect`);
    if (typeof raw.name !== "string" || raw.name.length === 0 || raw.name.length > 500)
      throw new Error(`${where} needs a name`);
    if (raw.issuer !== undefined && typeof raw.issuer !== "string")
      throw new Error(`${where}: issuer is an issuer name`);
    if (!isPlainObject(raw.claims)) throw new Error(`${where}: claims is an object`);
    if (!isPlainObject(raw.expect) || Object.keys(raw.expect).length === 0)
      throw new Error(`${where}: expect maps targets to allow, deny or { allow: RULE }`);
    const expect = new Map<string, Expectation>();
    for (const [target, wanted] of Object.entries(raw.expect)) {
      if (wanted === "allow") expect.set(target, { allow: true });
      else if (wanted === "deny") expect.set(target, { allow: false });
      else if (isPlainObject(wanted) && Object.keys(wanted).length === 1 && typeof wanted.allow === "string")
        expect.set(target, { allow: true, rule: wanted.allow });
      else throw new Error(`${where}: expect maps targets to allow, deny or { allow: RULE }`);
    }
    return {
      file: "(pushed)",
      line: index + 1,
      name: raw.name,
      ...(raw.issuer !== undefined ? { issuer: raw.issuer } : {}),
      claims: raw.claims,
      expect,
    };
  });
}

/** The same cases as readJsonCases reads them (what the CLI sends). */
export function casesAsJson(cases: readonly TestCase[]): unknown[] {
  return cases.map((c) => ({
    name: c.name,
    ...(c.issuer !== undefined ? { issuer: c.issuer } : {}),
    claims: c.claims,
    expect: Object.fromEntries(
      [...c.expect].map(([target, e]) => [target, !e.allow ? "deny" : e.rule ? { allow: e.rule } : "allow"]),
    ),
  }));
}

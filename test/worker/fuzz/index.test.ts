// Property-based check of the policy index (src/policy/rule-index.ts): on large generated policies (globs
// with `*` and `**`, any-of lists, negations, array claims, paths that share leading segments) and
// many generated identities, the rules the index finds always include every rule the token matches,
// and decisions, grants and explanations equal a brute-force scan over every rule in policy order,
// both for a policy compiled in memory and for one read back from its stored form (what the Worker loads).
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { compilePolicy, type CompiledPolicy } from "../../../src/policy/compile-policy";
import { loadSnapshot } from "../../../src/policy/load-snapshot";
import { evaluate, explainTarget, grantsFor } from "../../../src/policy/evaluate";
import { patternProblem } from "../../../src/policy/claim-glob";
import { buildSnapshot, storedSnapshot } from "../../../src/policy/snapshot-format";
import type { ConditionSpec, NormalizedClaims, PolicySnapshot, RuleSpec } from "../../../src/types";
import { identity, snapshotOf } from "../policy/fixtures";
import { runs } from "./fuzz";
import { referenceCondition } from "./reference";

const ISSUERS = ["corp-gitlab", "other-gitlab"] as const;
const TARGETS = ["deployer", "reader", "registry"] as const;

let base: PolicySnapshot;
beforeAll(async () => {
  base = (await snapshotOf()).snapshot;
});

// Few distinct segments, so rules share leading segments and tokens hit the same keys.
const segment = fc.constantFrom("a", "b", "ab", "team-1");
const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/"));
const patternArb = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: segment },
      { weight: 2, arbitrary: fc.constantFrom("*", "**", "a*", "*b", "t*-1") },
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((s) => s.join("/"))
  .filter((p) => patternProblem(p) === undefined);
const idArb = fc.constantFrom("1", "2", "12");
const anyOf = <T>(one: fc.Arbitrary<T>): fc.Arbitrary<T | T[]> =>
  fc.oneof({ weight: 3, arbitrary: one }, { weight: 1, arbitrary: fc.array(one, { minLength: 1, maxLength: 3 }) });
const condition = (values: fc.Arbitrary<string>): fc.Arbitrary<ConditionSpec> =>
  fc.oneof({ weight: 4, arbitrary: anyOf(values) }, { weight: 1, arbitrary: anyOf(values).map((not) => ({ not })) });

/** Per claim, what its conditions look like: ids exact, paths globbed, refs partly globbed. */
const CONDITIONS: Record<string, fc.Arbitrary<ConditionSpec>> = {
  project_id: condition(fc.oneof(idArb, fc.constant("1*"))),
  namespace_id: condition(idArb),
  project_path: condition(patternArb),
  namespace_path: condition(patternArb),
  groups_direct: condition(patternArb),
  ref: condition(fc.constantFrom("main", "release/*", "v*", "*")),
  ref_type: condition(fc.constantFrom("branch", "tag")),
};
const CLAIMS = Object.keys(CONDITIONS);

const ruleArb = fc.record({
  issuer: fc.constantFrom(...ISSUERS),
  match: fc
    .uniqueArray(fc.constantFrom(...CLAIMS), { maxLength: 3 })
    .chain((claims) =>
      fc
        .tuple(...claims.map((claim) => CONDITIONS[claim]!))
        .map((conditions) => Object.fromEntries(claims.map((claim, i) => [claim, conditions[i]!]))),
    ),
  allow: fc.subarray([...TARGETS], { minLength: 1 }),
});
const rulesArb = fc
  .array(ruleArb, { minLength: 200, maxLength: 1500, size: "max" })
  .map((rules): RuleSpec[] => rules.map((rule, i) => ({ name: `r${i}`, ...rule })));

const claimsArb: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    project_id: idArb,
    namespace_id: idArb,
    project_path: path,
    namespace_path: path,
    groups_direct: fc.array(path, { maxLength: 4 }),
    ref: fc.constantFrom("main", "release/1", "v2", "dev"),
    ref_type: fc.constantFrom("branch", "tag"),
  },
  { requiredKeys: [] },
);
const identitiesArb = fc.array(fc.record({ issuer: fc.constantFrom(...ISSUERS), claims: claimsArb }), {
  minLength: 30,
  maxLength: 30,
});

const matches = (rule: RuleSpec, issuer: string, claims: Record<string, unknown>) =>
  rule.issuer === issuer &&
  Object.entries(rule.match).every(([name, spec]) =>
    referenceCondition(spec, Object.hasOwn(claims, name) ? claims[name] : undefined),
  );

function checkAgainstScan(
  policy: CompiledPolicy,
  rules: readonly RuleSpec[],
  issuer: string,
  claims: Record<string, unknown>,
): number {
  const id = identity(claims as NormalizedClaims, issuer);
  const found = new Set<number>();
  policy.index.candidates(issuer, id.claims, (order) => found.add(order));
  const matching = rules.flatMap((rule, order) => (matches(rule, issuer, claims) ? [order] : []));
  for (const order of matching)
    expect(found.has(order), `rule ${order} ${JSON.stringify(rules[order])} for ${JSON.stringify(claims)}`).toBe(true);
  const grants: { target: string; rule: string }[] = [];
  for (const target of TARGETS) {
    const first = matching.find((order) => rules[order]!.allow.includes(target));
    const expected = first === undefined ? undefined : rules[first]!.name;
    if (expected) grants.push({ target, rule: expected });
    expect(evaluate(policy, id, target)).toEqual(
      expected ? { allowed: true, target, rule: expected } : { allowed: false, target },
    );
    const explained = explainTarget(policy, id, target, "candidates");
    expect(explained.allowed).toBe(expected !== undefined);
    expect(explained.rule).toBe(expected);
  }
  expect(grantsFor(policy, id)).toEqual(grants);
  return matching.length;
}

describe("the policy index (against a scan over every rule)", () => {
  it("finds every rule a token matches, and decides, grants and explains like the scan, in memory and from the stored form", async () => {
    let rulesSeen = 0;
    let matched = 0;
    let evaluatedIdentities = 0;
    await fc.assert(
      fc.asyncProperty(rulesArb, identitiesArb, async (rules, identities) => {
        const { snapshot } = await buildSnapshot(
          { issuers: base.issuers, targets: base.targets, rules },
          { sourceDigest: "0".repeat(64), createdAt: base.created_at },
        );
        const policies = [compilePolicy(snapshot), await loadSnapshot((await storedSnapshot(snapshot)).text)];
        rulesSeen += rules.length;
        for (const { issuer, claims } of identities) {
          for (const policy of policies) matched += checkAgainstScan(policy, rules, issuer, claims);
          evaluatedIdentities++;
        }
      }),
      runs(12),
    );
    // The generators must produce large policies and tokens that match rules, or the comparison is weak.
    expect(rulesSeen).toBeGreaterThan(5_000);
    expect(evaluatedIdentities).toBeGreaterThanOrEqual(360);
    expect(matched).toBeGreaterThan(1_000);
  });
});

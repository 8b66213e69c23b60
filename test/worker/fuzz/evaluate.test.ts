// Property-based fuzzing of policy evaluation (src/policy/evaluate.ts): random policies and random
// (also malformed) claims, decided by the indexed evaluator and by a reference scan over every rule
// in order. Deny by default, issuer binding and first-rule reporting must agree everywhere.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { isGatepassError } from "../../../src/errors";
import {
  MAX_CLAIM_ARRAY_LENGTH,
  MAX_CLAIM_VALUE_LENGTH,
  MAX_CONDITION_ALTERNATIVES,
  MAX_TOKEN_BYTES,
} from "../../../src/limits";
import { compileCondition } from "../../../src/policy/rule-condition";
import { compilePolicy } from "../../../src/policy/compile-policy";
import { evaluate, explainTarget, grantsFor } from "../../../src/policy/evaluate";
import { patternProblem } from "../../../src/policy/claim-glob";
import type { ConditionSpec, NormalizedClaims, PolicySnapshot, RuleSpec } from "../../../src/types";
import { identity, snapshotOf } from "../policy/fixtures";
import { adversarialPattern, adversarialValue, runs, timed } from "./fuzz";
import { referenceCondition } from "./reference";

const ISSUERS = ["corp-gitlab", "other-gitlab"] as const;
const TARGETS = ["deployer", "reader", "registry"] as const;
// Index claims (exact rules go to hash buckets) and others (scanned), including an array claim.
const CLAIMS = ["project_id", "project_path", "namespace_id", "namespace_path", "ref", "groups_direct"] as const;

let base: PolicySnapshot;
beforeAll(async () => {
  base = (await snapshotOf()).snapshot;
});

const part = fc.string({ unit: fc.constantFrom("a", "b", "1", "-"), maxLength: 3 });
const valueArb = fc.array(part, { minLength: 1, maxLength: 3 }).map((s) => s.join("/"));
const patternArb = fc
  .array(fc.oneof({ weight: 1, arbitrary: fc.constantFrom("**", "*", "a*") }, { weight: 4, arbitrary: part }), {
    minLength: 1,
    maxLength: 3,
  })
  .map((s) => s.join("/"))
  .filter((p) => patternProblem(p) === undefined);
const patterns = fc.oneof(patternArb, fc.array(patternArb, { minLength: 1, maxLength: 3 }));
const conditionArb: fc.Arbitrary<ConditionSpec> = fc.oneof(
  { weight: 3, arbitrary: patterns },
  { weight: 1, arbitrary: patterns.map((not) => ({ not })) },
);
const ruleArb = fc.record({
  issuer: fc.constantFrom(...ISSUERS),
  match: fc.dictionary(fc.constantFrom(...CLAIMS), conditionArb, { maxKeys: 3 }),
  allow: fc.subarray([...TARGETS], { minLength: 1 }),
});
const rulesArb = fc
  .array(ruleArb, { minLength: 1, maxLength: 25 })
  .map((rules): RuleSpec[] => rules.map((rule, i) => ({ name: `r${i}`, ...rule })));

/** Claim values as a verified token could carry them, plus malformed ones (cast: claims come from JSON). */
const claimValueArb = fc.oneof(
  { weight: 4, arbitrary: valueArb },
  { weight: 2, arbitrary: fc.array(valueArb, { maxLength: 4 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(
      "",
      "x".repeat(MAX_CLAIM_VALUE_LENGTH + 1),
      Array(MAX_CLAIM_ARRAY_LENGTH + 1).fill("a"),
      ["a", 1],
      1,
      null,
      {},
    ),
  },
);
const identityArb = fc.record({
  issuer: fc.constantFrom(...ISSUERS, "unconfigured"),
  claims: fc.dictionary(fc.constantFrom(...CLAIMS, "__proto__", "constructor"), claimValueArb, { maxKeys: 6 }),
});
const targetArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<string>(...TARGETS) },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom("nope", "__proto__", "<script>"), fc.string()) },
);

/** Reference: the first rule in policy order, of the token's issuer, that allows the target and whose every condition holds. */
function referenceRule(
  rules: readonly RuleSpec[],
  issuer: string,
  claims: Record<string, unknown>,
  target: string,
): string | undefined {
  const claim = (name: string) => (Object.hasOwn(claims, name) ? claims[name] : undefined);
  return rules.find(
    (rule) =>
      rule.issuer === issuer &&
      rule.allow.includes(target) &&
      Object.entries(rule.match).every(([name, spec]) => referenceCondition(spec, claim(name))),
  )?.name;
}

describe("policy evaluation (against a reference scan)", () => {
  it("decides, grants and explains exactly like the reference, and refuses unknown targets with target_unknown", () => {
    let allowed = 0;
    fc.assert(
      fc.property(rulesArb, identityArb, targetArb, (rules, { issuer, claims }, target) => {
        const policy = compilePolicy({ ...base, rules });
        const id = identity(claims as NormalizedClaims, issuer);
        if (!(TARGETS as readonly string[]).includes(target)) {
          for (const call of [() => evaluate(policy, id, target), () => explainTarget(policy, id, target)]) {
            let error: unknown;
            try {
              call();
            } catch (err) {
              error = err;
            }
            expect(isGatepassError(error) && error.code).toBe("target_unknown");
          }
          return;
        }
        const expected = referenceRule(rules, issuer, claims, target);
        if (expected) allowed++;
        expect(evaluate(policy, id, target)).toEqual(
          expected ? { allowed: true, target, rule: expected } : { allowed: false, target },
        );
        const explained = explainTarget(policy, id, target);
        expect(explained.allowed).toBe(expected !== undefined);
        expect(explained.rule).toBe(expected);
        const grants = TARGETS.flatMap((t) => {
          const rule = referenceRule(rules, issuer, claims, t);
          return rule ? [{ target: t, rule }] : [];
        });
        expect(grantsFor(policy, id)).toEqual(grants);
      }),
      runs(2_000),
    );
    // Both branches are exercised: a generator that never allows would make the comparison weak.
    expect(allowed).toBeGreaterThan(100);
  });
});

describe("condition matching time", () => {
  // The worst a token can make one condition cost: the most alternatives a condition may list, all
  // backtracking-shaped, against an array claim filling what a token can carry (a base64url payload of
  // at most MAX_TOKEN_BYTES holds about 3/4 of that in JSON). Measured: about 15 ms at worst.
  const BOUND_MS = 250;
  const PAYLOAD_CHARS = Math.floor((MAX_TOKEN_BYTES * 3) / 4);
  const arrayClaim = fc.integer({ min: 1, max: MAX_CLAIM_ARRAY_LENGTH }).chain((n) =>
    fc.array(adversarialValue(Math.min(MAX_CLAIM_VALUE_LENGTH, Math.floor(PAYLOAD_CHARS / n) - 3)), {
      minLength: n,
      maxLength: n,
    }),
  );

  it(`evaluates a maximal condition against a token-sized array claim in under ${BOUND_MS} ms`, () => {
    fc.assert(
      fc.property(
        fc.array(adversarialPattern, { minLength: 1, maxLength: MAX_CONDITION_ALTERNATIVES }),
        fc.boolean(),
        arrayClaim,
        (patterns, negated, values) => {
          const condition = compileCondition("groups_direct", negated ? { not: patterns } : patterns);
          const { value: result, ms } = timed(() => condition.matches(values));
          expect(typeof result).toBe("boolean");
          expect(ms).toBeLessThan(BOUND_MS);
        },
      ),
      runs(60),
    );
  });
});

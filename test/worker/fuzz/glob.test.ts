// Property-based fuzzing of the segment globs (src/policy/claim-glob.ts) against the reference matcher in
// ./reference.ts, plus the security properties policies rely on and a bound on matching time.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_CLAIM_VALUE_LENGTH } from "../../../src/limits";
import { compileGlob, patternProblem } from "../../../src/policy/claim-glob";
import { adversarialPattern, adversarialValue, runs, timed } from "./fuzz";
import { referenceGlob } from "./reference";

// A small alphabet makes near-misses (shared prefixes, repeated parts) common.
const char = fc.constantFrom("a", "b", "-", ".");
const word = (maxLength = 4) => fc.string({ unit: char, maxLength });
const wordWithStars = fc
  .string({ unit: fc.constantFrom("a", "b", "-", "*"), maxLength: 5 })
  .filter((s) => !s.includes("**"));
const patternArb = fc
  .array(fc.oneof({ weight: 1, arbitrary: fc.constant("**") }, { weight: 4, arbitrary: wordWithStars }), {
    minLength: 1,
    maxLength: 5,
  })
  .map((segments) => segments.join("/"))
  .filter((p) => patternProblem(p) === undefined);
const valueArb = fc.array(word(), { minLength: 1, maxLength: 6 }).map((segments) => segments.join("/"));
/** A literal path (no wildcard) that is a valid pattern. */
const literalArb = fc
  .array(word(6), { minLength: 1, maxLength: 4 })
  .map((s) => s.join("/"))
  .filter((p) => patternProblem(p) === undefined);

/** A value the pattern must match: each `*` replaced by a run without `/`, each `**` by 0–3 whole segments. */
const instanceOf = (pattern: string) =>
  fc
    .tuple(
      ...pattern.split("/").map((segment) =>
        segment === "**"
          ? fc.array(word(), { maxLength: 3 })
          : fc.tuple(...segment.split("*").map(() => word())).map((fills) => [
              segment
                .split("*")
                .map((part, i) => (i === 0 ? part : fills[i - 1] + part))
                .join(""),
            ]),
      ),
    )
    .map((expanded) => expanded.flat().join("/"));

const matches = (pattern: string, value: string) => compileGlob(pattern).matches(value);

describe("glob semantics (against the reference matcher)", () => {
  it("agrees with the reference on small-alphabet patterns and values", () => {
    fc.assert(
      fc.property(patternArb, valueArb, (pattern, value) => {
        expect(matches(pattern, value)).toBe(referenceGlob(pattern, value));
      }),
      runs(10_000),
    );
  });

  it("matches every instantiation of a pattern (and the reference agrees)", () => {
    fc.assert(
      fc.property(
        patternArb.chain((p) => fc.tuple(fc.constant(p), instanceOf(p))),
        ([pattern, value]) => {
          expect(referenceGlob(pattern, value)).toBe(true);
          expect(matches(pattern, value)).toBe(true);
        },
      ),
      runs(1_000),
    );
  });

  it("agrees with the reference on arbitrary Unicode, and only refused patterns fail to compile", () => {
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.string({
        unit: fc.constantFrom("*", "/", "a", "\u0000", "\u00e9", "\ud83d\ude00", "\ud800", "."),
        maxLength: 40,
      }),
    );
    fc.assert(
      fc.property(text, text, (pattern, value) => {
        const problem = patternProblem(pattern);
        if (problem !== undefined) {
          expect(() => compileGlob(pattern)).toThrow(/invalid pattern/);
          return;
        }
        expect(matches(pattern, value)).toBe(referenceGlob(pattern, value));
      }),
      runs(4_000),
    );
  });
});

describe("glob security properties", () => {
  it("a pattern without wildcards matches only itself", () => {
    const near = (p: string) =>
      fc.oneof(
        fc.constant(p),
        fc.string({ maxLength: 3 }).map((s) => p + s),
        fc.string({ maxLength: 3 }).map((s) => s + p),
        fc.constant(p.toUpperCase()),
        valueArb,
      );
    fc.assert(
      fc.property(
        literalArb.chain((p) => fc.tuple(fc.constant(p), near(p))),
        ([pattern, value]) => {
          const matcher = compileGlob(pattern);
          expect(matcher.exact).toBe(true);
          expect(matcher.matches(value)).toBe(value === pattern);
        },
      ),
      runs(2_000),
    );
  });

  it("`*` never crosses `/`: without `**`, a match has as many segments as the pattern", () => {
    fc.assert(
      fc.property(
        patternArb.filter((p) => !p.split("/").includes("**")),
        fc.oneof(valueArb, fc.string({ unit: fc.constantFrom("a", "/", "-"), maxLength: 12 })),
        (pattern, value) => {
          if (matches(pattern, value)) expect(value.split("/").length).toBe(pattern.split("/").length);
        },
      ),
      runs(2_000),
    );
  });

  it("`P`, `P/*` and `P/**` never match a look-alike `P<suffix>` such as platform/infra-evil", () => {
    const suffix = fc
      .tuple(fc.constantFrom("-", ".", "_", "a", "\u0000", " "), fc.string({ maxLength: 6 }))
      .map(([c, s]) => c + s);
    const rest = fc.option(valueArb, { nil: undefined });
    fc.assert(
      fc.property(literalArb, suffix, rest, (prefix, extra, tail) => {
        const lookAlike = tail === undefined ? prefix + extra : `${prefix}${extra}/${tail}`;
        for (const pattern of [prefix, `${prefix}/*`, `${prefix}/**`, `${prefix}/*/**`]) {
          if (patternProblem(pattern) === undefined) expect(matches(pattern, lookAlike)).toBe(false);
        }
      }),
      runs(1_000),
    );
  });

  it("never matches a value over the claim cap, whatever the pattern", () => {
    fc.assert(
      fc.property(
        patternArb,
        fc.integer({ min: MAX_CLAIM_VALUE_LENGTH + 1, max: MAX_CLAIM_VALUE_LENGTH + 64 }),
        fc.constantFrom("a", "/", "a/"),
        (pattern, length, unit) => {
          expect(matches(pattern, unit.repeat(length).slice(0, length))).toBe(false);
        },
      ),
      runs(300),
    );
  });
});

describe("glob matching time", () => {
  // Backtracking-shaped inputs at the size caps (see ./fuzz.ts). An exponential matcher takes seconds to
  // forever here; this one takes about a millisecond at most. The bound leaves room for a loaded machine.
  const BOUND_MS = 100;

  it(`matches adversarial patterns against values at the caps in under ${BOUND_MS} ms each`, () => {
    let slowest = 0;
    fc.assert(
      fc.property(adversarialPattern, adversarialValue(MAX_CLAIM_VALUE_LENGTH), (pattern, value) => {
        const matcher = compileGlob(pattern);
        const { value: result, ms } = timed(() => matcher.matches(value));
        slowest = Math.max(slowest, ms);
        expect(typeof result).toBe("boolean");
        expect(ms).toBeLessThan(BOUND_MS);
      }),
      runs(1_000),
    );
    console.log("glob adversarial: slowest match", slowest, "ms");
  });
});

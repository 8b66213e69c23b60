// Shared settings and generators for the property-based fuzz tests. The seed is fixed so every run
// explores the same inputs (no flaky CI); on a failure fast-check prints the seed, the path and the
// shrunk counterexample, which reproduce it exactly. To explore new inputs locally, change SEED.
import fc from "fast-check";
import { MAX_PATTERN_LENGTH } from "../../../src/limits";
import { patternProblem } from "../../../src/policy/claim-glob";

export const SEED = 20260501;

export function runs<T>(numRuns: number): fc.Parameters<T> {
  return { seed: SEED, numRuns };
}

/** Wall-clock milliseconds (the pool's workerd advances Date.now during synchronous work; checked). */
export function timed<T>(fn: () => T): { value: T; ms: number } {
  const started = Date.now();
  const value = fn();
  return { value, ms: Date.now() - started };
}

// Backtracking-shaped glob inputs: a backtracking template repeated up to the pattern cap, or random
// `*`/`**` segments of near-miss parts, ending in a part the values below never contain.
const TEMPLATES = ["*a", "a*", "*a*/", "**/a/", "**/*a*/", "**/", "**/*/", "*/"];
const TAILS = ["b", "*b", "b*", "**/b"];
const starSegment = fc.oneof(
  fc.constant("**"),
  fc.constant("*"),
  fc.string({ unit: fc.constantFrom("a", "*"), minLength: 1, maxLength: 8 }).filter((s) => !s.includes("**")),
);

export const adversarialPattern: fc.Arbitrary<string> = fc
  .oneof(
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...TEMPLATES), fc.constantFrom(...TAILS), fc.double({ min: 0.5, max: 1, noNaN: true }))
        .map(
          ([unit, tail, fill]) =>
            unit.repeat(Math.floor((fill * (MAX_PATTERN_LENGTH - tail.length)) / unit.length)) + tail,
        ),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.array(starSegment, { minLength: 1, maxLength: 60 }), fc.constantFrom(...TAILS))
        .map(([segments, tail]) => `${segments.join("/")}/${tail}`.slice(-MAX_PATTERN_LENGTH)),
    },
  )
  .filter((p) => patternProblem(p) === undefined);

/** Values of half to full `maxLength` characters. */
export const adversarialValue = (maxLength: number): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.constantFrom("a", "a/", "aa/", "a/a"),
      fc.integer({ min: Math.ceil(maxLength / 2), max: maxLength }),
      fc.constantFrom("", "c", "/c", "ab"),
    )
    .map(([unit, length, end]) => unit.repeat(length).slice(0, length - end.length) + end);

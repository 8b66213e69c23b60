// Reference semantics for the fuzz tests, written for obviousness rather than speed (exhaustive
// memoised search): segment globs and rule conditions as README/DESIGN describe them. Only used on
// small generated inputs; the real implementations are compared against these.
import { MAX_CLAIM_ARRAY_LENGTH, MAX_CLAIM_VALUE_LENGTH } from "../../../src/limits";
import type { ConditionSpec } from "../../../src/types";

/** `*` matches any run of characters (UTF-16 units) inside one segment. */
function segmentMatches(pattern: string, value: string): boolean {
  // can[i][j]: pattern[i..] matches value[j..].
  const can: boolean[][] = Array.from({ length: pattern.length + 1 }, () => Array<boolean>(value.length + 1).fill(false));
  can[pattern.length]![value.length] = true;
  for (let i = pattern.length - 1; i >= 0; i--) {
    for (let j = value.length; j >= 0; j--) {
      can[i]![j] = pattern[i] === "*" ? can[i + 1]![j]! || (j < value.length && can[i]![j + 1]!) : j < value.length && pattern[i] === value[j] && can[i + 1]![j + 1]!;
    }
  }
  return can[0]![0]!;
}

/** Anchored at both ends; a whole `**` segment matches zero or more whole value segments; oversized values never match. */
export function referenceGlob(pattern: string, value: string): boolean {
  if (value.length > MAX_CLAIM_VALUE_LENGTH) return false;
  const ps = pattern.split("/");
  const vs = value.split("/");
  const memo = new Map<number, boolean>();
  const from = (i: number, j: number): boolean => {
    const key = i * (vs.length + 1) + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === ps.length) result = j === vs.length;
    else if (ps[i] === "**") result = from(i + 1, j) || (j < vs.length && from(i, j + 1));
    else result = j < vs.length && segmentMatches(ps[i]!, vs[j]!) && from(i + 1, j + 1);
    memo.set(key, result);
    return result;
  };
  return from(0, 0);
}

/** Any-of patterns, optionally negated; a missing or malformed claim never matches, not even a negation. */
export function referenceCondition(spec: ConditionSpec, value: unknown): boolean {
  const negated = typeof spec === "object" && !Array.isArray(spec);
  const inner = negated ? spec.not : spec;
  const patterns = typeof inner === "string" ? [inner] : inner;
  const anyOf = (v: string) => patterns.some((p) => referenceGlob(p, v));
  if (typeof value === "string") return value.length <= MAX_CLAIM_VALUE_LENGTH && anyOf(value) !== negated;
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_CLAIM_ARRAY_LENGTH) return false;
  if (!value.every((e): e is string => typeof e === "string" && e.length <= MAX_CLAIM_VALUE_LENGTH)) return false;
  return value.some(anyOf) !== negated;
}

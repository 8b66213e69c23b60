// Reference semantics for the fuzz tests, written for obviousness rather than speed (exhaustive
// memoised search): segment globs and rule conditions as README/DESIGN describe them. Only used on
// small generated inputs; the real implementations are compared against these.
import { MAX_CLAIM_ARRAY_LENGTH, MAX_CLAIM_VALUE_LENGTH } from "../../../src/limits";
import type { ConditionSpec } from "../../../src/types";

/** `*` matches any run of characters (UTF-16 units) inside one segment. */
function segmentMatches(pattern: string, value: string): boolean {
  // can[i][j]: pattern[i..] matches value[j..].
  const can: boolean[][] = Array.from({ length: pattern.length + 1 }, () =>
    Array<boolean>(value.length + 1).fill(false),
  );
  can[pattern.length]![value.length] = true;
  for (let i = pattern.length - 1; i >= 0; i--) {
    for (let j = value.length; j >= 0; j--) {
      can[i]![j] =
        pattern[i] === "*"
          ? can[i + 1]![j]! || (j < value.length && can[i]![j + 1]!)
          : j < value.length && pattern[i] === value[j] && can[i + 1]![j + 1]!;
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

/**
 * A condition on a claim value, written from the table in docs/policies.md ("What each condition does
 * with each kind of claim value"), not from src/policy: test/node/semantics-table.test.ts checks this
 * function against every cell of that table, so a gap between the docs and the code fails a test.
 * Rows: a literal, `*`, `**` (all referenceGlob) and an any-of list match when one alternative does;
 * `not` when none does. Columns: a number or boolean is read as its decimal or true/false spelling; an
 * array matches a positive condition when one element does and a `not` when it has elements and none
 * does; an empty array, a missing claim (or anything else) and values over the limits match nothing.
 */
export function referenceCondition(spec: ConditionSpec, value: unknown): boolean {
  const negated = typeof spec === "object" && !Array.isArray(spec);
  const inner = negated ? spec.not : spec;
  const alternatives = typeof inner === "string" ? [inner] : inner;
  const anyAlternative = (text: string) => alternatives.some((pattern) => referenceGlob(pattern, text));
  if (Array.isArray(value)) {
    if (value.length === 0 || value.length > MAX_CLAIM_ARRAY_LENGTH) return false; // the empty-array column
    const texts = value.map(spelling);
    if (texts.some((text) => text === undefined || text.length > MAX_CLAIM_VALUE_LENGTH)) return false;
    return negated ? !texts.some((text) => anyAlternative(text!)) : texts.some((text) => anyAlternative(text!));
  }
  const text = spelling(value);
  if (text === undefined || text.length > MAX_CLAIM_VALUE_LENGTH) return false; // the missing-claim column
  return negated ? !anyAlternative(text) : anyAlternative(text);
}

/** The table's reading of a scalar: strings as they are, numbers in decimal, booleans as true/false. */
function spelling(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  return undefined;
}

// Segment globs for claim values: `*` matches any run of characters inside one `/`-separated segment,
// a whole segment `**` matches zero or more whole segments. Patterns are anchored at both ends, so
// `platform/infra` never matches `platform/infra-evil` and `platform/*` never matches `platform/a/b`.
//
// Cost: the segment level and the character level each use the greedy "restart after the last star"
// algorithm, which never backtracks further than the last star. Worst case O(|pattern| × |value|) with
// no exponential blow-up, and both lengths are capped, so one match is a bounded amount of work.

import { MAX_CLAIM_VALUE_LENGTH, MAX_PATTERN_LENGTH } from "../limits";

export interface Matcher {
  /** The pattern as written. */
  readonly source: string;
  /** True when the pattern has no wildcard (compared with ===; usable as an index key). */
  readonly exact: boolean;
  matches(value: string): boolean;
}

const GLOBSTAR = Symbol("**");
/** One pattern segment: a literal, a star-split literal list (`a*b*c` → ["a","b","c"]), or `**`. */
type Segment = string | readonly string[] | typeof GLOBSTAR;

/** Why a pattern cannot be compiled, or undefined when it can. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return "an empty pattern matches nothing; remove the condition or give a value";
  if (pattern.length > MAX_PATTERN_LENGTH) return `patterns are limited to ${MAX_PATTERN_LENGTH} characters`;
  for (const segment of pattern.split("/")) {
    if (segment !== "**" && segment.includes("**")) {
      return `'**' must be a whole path segment (as in 'group/**'), not part of '${segment}'`;
    }
  }
  return undefined;
}

/** Compiles a pattern; throws on a pattern `patternProblem` refuses (callers validate first). */
export function compileGlob(pattern: string): Matcher {
  const problem = patternProblem(pattern);
  if (problem) throw new Error(`invalid pattern '${pattern}': ${problem}`);
  if (!pattern.includes("*")) {
    return { source: pattern, exact: true, matches: (value) => value === pattern };
  }
  const segments: Segment[] = pattern
    .split("/")
    .map((s) => (s === "**" ? GLOBSTAR : s.includes("*") ? s.split("*") : s));
  return {
    source: pattern,
    exact: false,
    matches: (value) => value.length <= MAX_CLAIM_VALUE_LENGTH && matchSegments(segments, value.split("/")),
  };
}

function matchSegments(pattern: readonly Segment[], value: readonly string[]): boolean {
  let p = 0;
  let v = 0;
  let starP = -1; // index of the last `**` seen
  let starV = 0; // value index that `**` resumes from
  while (v < value.length) {
    const segment = pattern[p];
    if (segment === GLOBSTAR) {
      starP = p++;
      starV = v;
    } else if (segment !== undefined && matchSegment(segment, value[v]!)) {
      p++;
      v++;
    } else if (starP >= 0) {
      // Let the last `**` swallow one more value segment and retry from just after it.
      p = starP + 1;
      v = ++starV;
    } else {
      return false;
    }
  }
  while (pattern[p] === GLOBSTAR) p++;
  return p === pattern.length;
}

/**
 * `parts` is the segment split on `*`: the value must start with the first, end with the last, and contain the rest in
 * order.
 */
function matchSegment(segment: string | readonly string[], value: string): boolean {
  if (typeof segment === "string") return segment === value;
  const first = segment[0]!;
  const last = segment[segment.length - 1]!;
  if (value.length < first.length + last.length || !value.startsWith(first) || !value.endsWith(last)) return false;
  let at = first.length;
  const end = value.length - last.length;
  for (let i = 1; i < segment.length - 1; i++) {
    const part = segment[i]!;
    // Leftmost occurrence is always the best choice: it leaves the most room for what follows.
    const found = value.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

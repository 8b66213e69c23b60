// One rule condition on one claim: any-of a list of patterns, optionally negated. The table in
// docs/policies.md ("What each condition does with each kind of claim value") is the definition: a
// missing claim and an empty array never match (not even a negation), and a non-empty array claim
// matches when any element does (a negation: when no element does), so absent data can only ever deny.

import { MAX_CLAIM_ARRAY_LENGTH, MAX_CLAIM_VALUE_LENGTH } from "../limits";
import type { ConditionSpec, NormalizedClaims } from "../types";
import { compileGlob, type Matcher } from "./claim-glob";

export type ClaimValue = string | readonly string[] | undefined;

export interface Condition {
  readonly claim: string;
  readonly negated: boolean;
  readonly patterns: readonly Matcher[];
  matches(value: ClaimValue): boolean;
}

/** The patterns of a condition as written, and whether it is negated. */
export function conditionParts(spec: ConditionSpec): { negated: boolean; patterns: string[] } {
  if (typeof spec === "string") return { negated: false, patterns: [spec] };
  if (Array.isArray(spec)) return { negated: false, patterns: spec };
  const inner = spec.not;
  return { negated: true, patterns: typeof inner === "string" ? [inner] : inner };
}

export function compileCondition(claim: string, spec: ConditionSpec): Condition {
  const { negated, patterns: sources } = conditionParts(spec);
  const patterns = sources.map(compileGlob);
  const anyPattern = (value: string): boolean => {
    for (const pattern of patterns) if (pattern.matches(value)) return true;
    return false;
  };
  return {
    claim,
    negated,
    patterns,
    matches(value) {
      if (value === undefined) return false;
      // Oversized values never match, whether the condition is negated or not (fail closed).
      if (typeof value === "string") return value.length <= MAX_CLAIM_VALUE_LENGTH && anyPattern(value) !== negated;
      if (value.length === 0 || value.length > MAX_CLAIM_ARRAY_LENGTH) return false;
      if (value.some((element) => element.length > MAX_CLAIM_VALUE_LENGTH)) return false;
      return value.some(anyPattern) !== negated;
    },
  };
}

/**
 * A claim as a string or string array; anything else (or an inherited property) counts as missing.
 * Verified claims are already strings (src/verify/claim-normalisation.ts); a number or boolean that reaches here
 * anyway is read as its decimal or true/false spelling, as the table in docs/policies.md says.
 */
export function claimValue(claims: NormalizedClaims, claim: string): ClaimValue {
  if (!Object.hasOwn(claims, claim)) return undefined;
  const value: unknown = claims[claim];
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.length <= MAX_CLAIM_ARRAY_LENGTH) {
    if (value.every((e) => typeof e === "string")) return value as string[];
    const spelled = value.map(scalarSpelling);
    return spelled.every((e) => e !== undefined) ? (spelled as string[]) : undefined;
  }
  return scalarSpelling(value);
}

function scalarSpelling(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  return undefined;
}

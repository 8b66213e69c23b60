// Which rules can concern a token, found without looking at the others.
//
// Every rule is filed under one of its conditions: a positive condition whose alternatives all start
// with a literal, that is an exact value (`platform/infra`, `42`) or literal leading path segments
// (`team-5` in `team-5/**`, `group` in `group/*`). A token can satisfy the rule only if its value for
// that claim equals an exact key or starts with a prefix key's segments (a pattern's literal segments
// each match one value segment exactly), so looking up the token's values finds every rule it can
// match, plus a few it will then fail. Rules with no such condition (only negations, or patterns that
// start with `*`) are looked at for every token of their issuer.
//
// Which condition: the one whose keys the fewest rules of the issuer could also be filed under, so a
// `ref_type: branch` that every rule has never wins over a project. The filing is chosen when the
// snapshot is built and stored with it (the Worker never has to read every rule to index them). Any
// filing among a rule's conditions is correct; only how many rules a token looks at depends on it.

import { MAX_CLAIM_VALUE_LENGTH, MAX_INDEX_PREFIX_SEGMENTS } from "../limits";
import type { NormalizedClaims, RuleSpec } from "../types";
import { claimValue, conditionParts } from "./rule-condition";

/** Claims that scope a rule to projects, most selective first (ids cannot be renamed and reused). */
export const SCOPE_CLAIMS = ["project_id", "project_path", "namespace_id", "namespace_path"] as const;

/** An exact key is "=" + the value; a prefix key is "^" + the pattern's literal leading segments. */
export const EXACT = "=";
export const PREFIX = "^";

/** Where a rule is filed: one claim and its keys (sorted, unique). */
export interface Filing {
  readonly claim: string;
  readonly keys: readonly string[];
}

/** The key a token value must hit for `pattern` to match it, or undefined when the pattern starts with a wildcard. */
export function keyOf(pattern: string): string | undefined {
  if (!pattern.includes("*")) return EXACT + pattern;
  const lead: string[] = [];
  for (const segment of pattern.split("/")) {
    if (segment.includes("*") || lead.length === MAX_INDEX_PREFIX_SEGMENTS) break;
    lead.push(segment);
  }
  return lead.length > 0 ? PREFIX + lead.join("/") : undefined;
}

/** Every filing a rule allows: one per positive condition whose alternatives all have a key. */
export function filingOptions(rule: RuleSpec): Filing[] {
  const options: Filing[] = [];
  for (const [claim, condition] of Object.entries(rule.match)) {
    const { negated, patterns } = conditionParts(condition);
    if (negated) continue;
    const keys = patterns.map(keyOf);
    if (keys.every((key): key is string => key !== undefined)) options.push({ claim, keys: [...new Set(keys)].sort() });
  }
  return options;
}

/** Claim order for ties: scope claims first (the filing lint asks for), then by name. */
function claimRank(claim: string): number {
  const scope = (SCOPE_CLAIMS as readonly string[]).indexOf(claim);
  return scope >= 0 ? scope : SCOPE_CLAIMS.length;
}

/** Each rule's filing (undefined: looked at for every token of its issuer), chosen deterministically. */
export function chooseFilings(rules: readonly RuleSpec[]): (Filing | undefined)[] {
  const options = rules.map(filingOptions);
  // How many rules of the issuer could be filed under each key: a token with that value meets them all.
  const offered = new Map<string, number>();
  const slot = (issuer: string, claim: string, key: string) => `${issuer}\u0000${claim}\u0000${key}`;
  rules.forEach((rule, i) => {
    for (const option of options[i]!)
      for (const key of option.keys) {
        const at = slot(rule.issuer, option.claim, key);
        offered.set(at, (offered.get(at) ?? 0) + 1);
      }
  });
  return rules.map((rule, i) => {
    let best: Filing | undefined;
    let bestCost = Infinity;
    for (const option of options[i]!) {
      const cost = option.keys.reduce((sum, key) => sum + offered.get(slot(rule.issuer, option.claim, key))!, 0);
      const better =
        cost < bestCost ||
        (cost === bestCost &&
          best !== undefined &&
          (claimRank(option.claim) < claimRank(best.claim) ||
            (claimRank(option.claim) === claimRank(best.claim) && option.claim < best.claim)));
      if (better) {
        best = option;
        bestCost = cost;
      }
    }
    return best;
  });
}

/** Rule numbers by key: JSON-shaped, so a stored index is usable as JSON.parse returns it. */
type Buckets = Record<string, number[]>;

/** One issuer's rules, in the shape the stored snapshot keeps: lists of rule numbers (in policy order). */
export interface IssuerIndexData {
  /** claim → exact value → rules. */
  exact: Record<string, Buckets>;
  /** claim → literal leading segments → rules. */
  prefix: Record<string, Buckets>;
  /** claim → the most segments of its prefix keys (longer values are looked up by their first segments). */
  depth: Record<string, number>;
  /** Rules filed under no claim: looked at for every token of the issuer. */
  scanned: number[];
}

export type IndexData = Record<string, IssuerIndexData>;

interface ClaimLookup {
  readonly claim: string;
  readonly exact: Buckets | undefined;
  readonly prefix: Buckets | undefined;
  readonly depth: number;
}

const own = (buckets: Buckets | undefined, key: string): number[] | undefined =>
  buckets && Object.hasOwn(buckets, key) ? buckets[key] : undefined;

/**
 * Finds the rules a token can match. Built from filings (compilePolicy, the stored form's writer) or
 * taken as stored (read: checked in shape only; a rule number is checked when it is used, and a list
 * that is not one fails the request closed), so a cold isolate does no work per rule.
 */
export class RuleIndex {
  private readonly lookups = new Map<string, { claims: ClaimLookup[]; scanned: number[] }>();

  private constructor(readonly data: IndexData) {
    for (const [issuer, index] of Object.entries(data)) {
      const claims = [...new Set([...Object.keys(index.exact), ...Object.keys(index.prefix)])].sort();
      this.lookups.set(issuer, {
        claims: claims.map((claim) => ({
          claim,
          exact: Object.hasOwn(index.exact, claim) ? index.exact[claim] : undefined,
          prefix: Object.hasOwn(index.prefix, claim) ? index.prefix[claim] : undefined,
          depth: Object.hasOwn(index.depth, claim) ? index.depth[claim]! : 0,
        })),
        scanned: index.scanned,
      });
    }
  }

  /** The index of `rules` filed as `filings` say. */
  static build(rules: readonly RuleSpec[], filings: readonly (Filing | undefined)[]): RuleIndex {
    const data: IndexData = {};
    rules.forEach((rule, order) => {
      const index = (data[rule.issuer] ??= { exact: {}, prefix: {}, depth: {}, scanned: [] });
      const filing = filings[order];
      if (!filing) {
        index.scanned.push(order);
        return;
      }
      for (const key of filing.keys) {
        const value = key.slice(1);
        const buckets = key[0] === EXACT ? (index.exact[filing.claim] ??= {}) : (index.prefix[filing.claim] ??= {});
        (Object.hasOwn(buckets, value) ? buckets[value]! : (buckets[value] = [])).push(order);
        if (key[0] === PREFIX)
          index.depth[filing.claim] = Math.max(index.depth[filing.claim] ?? 0, value.split("/").length);
      }
    });
    return new RuleIndex(data);
  }

  /** A stored index, checked in shape; undefined when it is not one. */
  static read(value: unknown, issuers: ReadonlySet<string>): RuleIndex | undefined {
    if (!isRecord(value)) return undefined;
    for (const [issuer, index] of Object.entries(value)) {
      if (!issuers.has(issuer) || !isRecord(index) || Object.keys(index).sort().join() !== "depth,exact,prefix,scanned")
        return undefined;
      const { exact, prefix, depth, scanned } = index;
      if (!isRecord(exact) || !isRecord(prefix) || !isRecord(depth) || !Array.isArray(scanned)) return undefined;
      if (![...Object.values(exact), ...Object.values(prefix)].every(isRecord)) return undefined;
      if (
        !Object.values(depth).every(
          (d) => Number.isSafeInteger(d) && (d as number) >= 0 && (d as number) <= MAX_INDEX_PREFIX_SEGMENTS,
        )
      )
        return undefined;
    }
    return new RuleIndex(value as IndexData);
  }

  /**
   * Calls `visit` with every rule of the issuer these claims can match (some more than once, when an
   * array claim or an any-of list hits several keys), and with the rules filed under no claim.
   */
  candidates(issuer: string, claims: NormalizedClaims, visit: (order: number) => void): void {
    const index = this.lookups.get(issuer);
    if (!index) return;
    for (const lookup of index.claims) {
      const value = claimValue(claims, lookup.claim);
      if (value === undefined) continue;
      if (typeof value === "string") lookUp(lookup, value, visit);
      else for (const element of value) lookUp(lookup, element, visit);
    }
    visitAll(index.scanned, visit);
  }
}

function lookUp(lookup: ClaimLookup, value: string, visit: (order: number) => void): void {
  // Oversized values match no condition (rule-condition.ts): there is nothing to find.
  if (value.length > MAX_CLAIM_VALUE_LENGTH) return;
  visitAll(own(lookup.exact, value), visit);
  // The value's first 1..depth segments (the whole value when it has no more).
  let end = -1;
  for (let depth = 1; depth <= lookup.depth; depth++) {
    end = value.indexOf("/", end + 1);
    visitAll(own(lookup.prefix, end < 0 ? value : value.slice(0, end)), visit);
    if (end < 0) break;
  }
}

function visitAll(orders: number[] | undefined, visit: (order: number) => void): void {
  if (orders === undefined) return;
  // A stored list that is not one: the policy cannot be evaluated (the caller fails closed).
  if (!Array.isArray(orders)) throw new MalformedIndexError();
  for (const order of orders) visit(order);
}

/** A stored index entry that is not a list of rule numbers. */
export class MalformedIndexError extends Error {
  constructor() {
    super("the index holds a bucket that is not a list of rule numbers");
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

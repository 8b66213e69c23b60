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
import { claimValue, conditionParts } from "./condition";

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

/** Whether `filing` is one of the rule's own options (a stored index is checked against each rule it decodes). */
export function isFilingOf(rule: RuleSpec, filing: Filing | undefined): boolean {
  if (filing === undefined) return true; // looked at for every token: always correct
  const option = filingOptions(rule).find((o) => o.claim === filing.claim);
  return option !== undefined && option.keys.length === filing.keys.length && option.keys.every((key, i) => key === filing.keys[i]);
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
    for (const option of options[i]!) for (const key of option.keys) {
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
        (cost === bestCost && best !== undefined &&
          (claimRank(option.claim) < claimRank(best.claim) || (claimRank(option.claim) === claimRank(best.claim) && option.claim < best.claim)));
      if (better) {
        best = option;
        bestCost = cost;
      }
    }
    return best;
  });
}

interface ClaimIndex {
  readonly exact: Map<string, number[]>;
  readonly prefix: Map<string, number[]>;
  /** The most segments any prefix key has: longer values are looked up by their first segments only. */
  depth: number;
}

interface IssuerIndex {
  readonly claims: Map<string, ClaimIndex>;
  readonly scanned: number[];
}

/** Rule numbers (policy order) by issuer and filing; rules are added in order, so every list is sorted. */
export class RuleIndex {
  private readonly issuers = new Map<string, IssuerIndex>();

  add(order: number, issuer: string, filing: Filing | undefined): void {
    let index = this.issuers.get(issuer);
    if (!index) this.issuers.set(issuer, (index = { claims: new Map(), scanned: [] }));
    if (!filing) {
      index.scanned.push(order);
      return;
    }
    let claim = index.claims.get(filing.claim);
    if (!claim) index.claims.set(filing.claim, (claim = { exact: new Map(), prefix: new Map(), depth: 0 }));
    for (const key of filing.keys) {
      const value = key.slice(1);
      if (key[0] === EXACT) push(claim.exact, value, order);
      else {
        push(claim.prefix, value, order);
        claim.depth = Math.max(claim.depth, value.split("/").length);
      }
    }
  }

  /**
   * Calls `visit` with every rule of the issuer these claims can match (some more than once, when an
   * array claim or an any-of list hits several keys), and with the rules filed under no claim.
   */
  candidates(issuer: string, claims: NormalizedClaims, visit: (order: number) => void): void {
    const index = this.issuers.get(issuer);
    if (!index) return;
    for (const [name, claim] of index.claims) {
      const value = claimValue(claims, name);
      if (value === undefined) continue;
      if (typeof value === "string") lookUp(claim, value, visit);
      else for (const element of value) lookUp(claim, element, visit);
    }
    for (const order of index.scanned) visit(order);
  }
}

function lookUp(claim: ClaimIndex, value: string, visit: (order: number) => void): void {
  // Oversized values match no condition (condition.ts): there is nothing to find.
  if (value.length > MAX_CLAIM_VALUE_LENGTH) return;
  const exact = claim.exact.get(value);
  if (exact) for (const order of exact) visit(order);
  // The value's first 1..depth segments (the whole value when it has no more).
  let end = -1;
  for (let depth = 1; depth <= claim.depth; depth++) {
    end = value.indexOf("/", end + 1);
    const prefix = claim.prefix.get(end < 0 ? value : value.slice(0, end));
    if (prefix) for (const order of prefix) visit(order);
    if (end < 0) break;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

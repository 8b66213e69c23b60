// The static half of `policies plan` and all of `policies diff`: what changed between two policy
// versions, read from their parts alone (no identities). Per target: its own fields, the rules that
// allow it (added, removed or changed field by field), and for a privileged target the rules that now
// reach it and by which scope; then the lint findings gained and lost. Pure: the CLI reads the versions.

import { lintPolicy, type LintFinding } from "../../src/policy/policy-lint";
import type { PolicyParts } from "../../src/policy/policy-schema";
import { canonicalJson } from "../../src/policy/snapshot-format";
import type { IssuerConfig, RuleSpec } from "../../src/types";
import { idClaims, scopeClaims, vocabularyOf } from "../../src/verify/issuer-kinds/claim-vocabulary";

export type ChangeKind = "added" | "removed" | "changed";

/** One field that differs: `match.ref`, `allow`, `role_arn`, … with its value on each side (undefined: absent). */
export interface FieldChange {
  field: string;
  before?: unknown;
  after?: unknown;
}

export interface RuleChange {
  rule: string;
  kind: ChangeKind;
  /** Empty for an added or removed rule. */
  fields: FieldChange[];
}

/** A rule that reaches a privileged target after the change and did not, as written, before. */
export interface NewReach {
  rule: string;
  issuer: string;
  /** The rule's project and namespace conditions as written, or why it has none. */
  scope: string;
}

export interface TargetDiff {
  target: string;
  /** The target itself: added, removed, changed (its fields), or undefined when only its rules changed. */
  kind?: ChangeKind;
  privileged: boolean;
  fields: FieldChange[];
  rules: RuleChange[];
  newlyReachable: NewReach[];
}

export interface IssuerDiff {
  issuer: string;
  kind: ChangeKind;
  fields: FieldChange[];
}

/** A lint finding, said as one line (`rule 'x': code: message`). */
export type LintLine = string;

export interface PolicyDiff {
  issuers: IssuerDiff[];
  targets: TargetDiff[];
  lint: { gained: LintLine[]; lost: LintLine[] };
}

export function diffPolicies(before: PolicyParts, after: PolicyParts): PolicyDiff {
  return {
    issuers: diffNamed(before.issuers, after.issuers).map(([name, kind, fields]) => ({ issuer: name, kind, fields })),
    targets: diffTargets(before, after),
    lint: diffLint(lintPolicy(before), lintPolicy(after)),
  };
}

/** True when nothing differs (the lint lines follow from the parts, so they are not counted). */
export function isEmptyDiff(diff: PolicyDiff): boolean {
  return diff.issuers.length === 0 && diff.targets.length === 0;
}

function diffTargets(before: PolicyParts, after: PolicyParts): TargetDiff[] {
  const targetChanges = new Map(
    diffNamed(before.targets, after.targets).map(([name, kind, fields]) => [name, { kind, fields }]),
  );
  const rulesBefore = byName(before.rules);
  const rulesAfter = byName(after.rules);
  const privilegedAfter = new Map(after.targets.map((t) => [t.name, t.privileged]));
  const privilegedBefore = new Map(before.targets.map((t) => [t.name, t.privileged]));
  const names = new Set([...before.targets, ...after.targets].map((t) => t.name));
  const diffs: TargetDiff[] = [];
  for (const target of [...names].sort()) {
    const rules = ruleChangesFor(target, rulesBefore, rulesAfter);
    const privileged = privilegedAfter.get(target) ?? false;
    const newlyReachable = privileged
      ? newReaches(target, rulesBefore, rulesAfter, privilegedBefore.get(target) === true, after.issuers)
      : [];
    const own = targetChanges.get(target);
    if (!own && rules.length === 0 && newlyReachable.length === 0) continue;
    diffs.push({
      target,
      ...(own ? { kind: own.kind } : {}),
      privileged,
      fields: own?.fields ?? [],
      rules,
      newlyReachable,
    });
  }
  return diffs;
}

/** The rules that allow `target` on either side, and how each changed. */
function ruleChangesFor(target: string, before: Map<string, RuleSpec>, after: Map<string, RuleSpec>): RuleChange[] {
  const names = new Set<string>();
  for (const [name, rule] of before) if (rule.allow.includes(target)) names.add(name);
  for (const [name, rule] of after) if (rule.allow.includes(target)) names.add(name);
  const changes: RuleChange[] = [];
  for (const name of [...names].sort()) {
    const a = before.get(name);
    const b = after.get(name);
    if (!a) changes.push({ rule: name, kind: "added", fields: [] });
    else if (!b) changes.push({ rule: name, kind: "removed", fields: [] });
    else {
      const fields = fieldChanges(flattenRule(a), flattenRule(b));
      if (fields.length > 0) changes.push({ rule: name, kind: "changed", fields });
    }
  }
  return changes;
}

/**
 * Rules that reach a privileged target after the change and did not reach it with the same issuer and
 * conditions before: new rules, rules newly allowing it, rules whose conditions changed, and every
 * rule allowing a target that has just become privileged.
 */
function newReaches(
  target: string,
  before: Map<string, RuleSpec>,
  after: Map<string, RuleSpec>,
  wasPrivileged: boolean,
  issuers: readonly IssuerConfig[],
): NewReach[] {
  const reachKey = (rule: RuleSpec) => canonicalJson({ issuer: rule.issuer, match: rule.match });
  const reachedBefore = new Set<string>();
  if (wasPrivileged)
    for (const rule of before.values()) if (rule.allow.includes(target)) reachedBefore.add(reachKey(rule));
  const reaches: NewReach[] = [];
  for (const rule of after.values()) {
    if (!rule.allow.includes(target) || reachedBefore.has(reachKey(rule))) continue;
    const issuer = issuers.find((candidate) => candidate.name === rule.issuer);
    reaches.push({ rule: rule.name, issuer: rule.issuer, scope: ruleScope(rule.match, issuer) });
  }
  return reaches.sort((x, y) => (x.rule < y.rule ? -1 : x.rule > y.rule ? 1 : 0));
}

/** A rule's project and owner conditions as written, in its issuer's claim names, saying when no id is among them. */
export function ruleScope(match: RuleSpec["match"], issuer: IssuerConfig | undefined): string {
  const vocabulary = vocabularyOf(issuer);
  const scope = scopeClaims(vocabulary)
    .filter((claim) => Object.hasOwn(match, claim))
    .map((claim) => `${claim} ${JSON.stringify(match[claim])}`);
  if (scope.length === 0) return "no project or namespace scope";
  const byId = idClaims(vocabulary).some((claim) => Object.hasOwn(match, claim));
  return `${scope.join(", ")}${byId ? "" : " (by path only)"}`;
}

function diffLint(before: readonly LintFinding[], after: readonly LintFinding[]): PolicyDiff["lint"] {
  const line = (f: LintFinding) => `rule '${f.rule.name}': ${f.severity} ${f.code}: ${f.message}`;
  const a = new Set(before.map(line));
  const b = new Set(after.map(line));
  return { gained: [...b].filter((l) => !a.has(l)).sort(), lost: [...a].filter((l) => !b.has(l)).sort() };
}

/** Items keyed by name on both sides: [name, kind, field changes] for each that differs, by name. */
function diffNamed<T extends { name: string }>(
  before: readonly T[],
  after: readonly T[],
): [string, ChangeKind, FieldChange[]][] {
  const a = byName(before);
  const b = byName(after);
  const out: [string, ChangeKind, FieldChange[]][] = [];
  for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(name);
    const y = b.get(name);
    if (!x) out.push([name, "added", []]);
    else if (!y) out.push([name, "removed", []]);
    else {
      const fields = fieldChanges(flatten(x), flatten(y));
      if (fields.length > 0) out.push([name, "changed", fields]);
    }
  }
  return out;
}

function byName<T extends { name: string }>(items: readonly T[]): Map<string, T> {
  return new Map(items.map((item) => [item.name, item]));
}

/** A rule's fields one level down into `match` and `acknowledge`, so a change names the claim. */
function flattenRule(rule: RuleSpec): Map<string, unknown> {
  const fields = flatten(rule);
  for (const nested of ["match", "acknowledge"] as const) {
    const value = rule[nested];
    fields.delete(nested);
    if (value) for (const [key, v] of Object.entries(value)) fields.set(`${nested}.${key}`, v);
  }
  return fields;
}

function flatten(item: object): Map<string, unknown> {
  return new Map(Object.entries(item).filter(([key, value]) => key !== "name" && value !== undefined));
}

function fieldChanges(before: Map<string, unknown>, after: Map<string, unknown>): FieldChange[] {
  const changes: FieldChange[] = [];
  for (const field of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    const a = before.get(field);
    const b = after.get(field);
    if (a !== undefined && b !== undefined && canonicalJson(a) === canonicalJson(b)) continue;
    changes.push({ field, ...(a !== undefined ? { before: a } : {}), ...(b !== undefined ? { after: b } : {}) });
  }
  return changes;
}

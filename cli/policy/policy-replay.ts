// The replay half of `policies plan`: every identity gatepass has verified recently (D1
// seen_identities) is evaluated under both versions with the Worker's own evaluator, and the
// identities whose decision on a target changes are grouped by namespace and project, with counts and
// one example job per group. Pure: the caller reads the identities and compiles the two versions.

import { REPLAY_UNRECORDED_CLAIMS } from "../../src/audit/seen-identities";
import type { CompiledPolicy } from "../../src/policy/compile-policy";
import { grantsFor } from "../../src/policy/evaluate";
import type { IssuerConfig, NormalizedClaims, VerifiedIdentity } from "../../src/types";
import { vocabularyOf, type ClaimVocabulary } from "../../src/verify/issuer-kinds/claim-vocabulary";

/** One distinct decision-relevant claim set, as the Worker records it (docs/storage.md, seen_identities). */
export interface SeenIdentity {
  /** The configured issuer's name when it was seen. */
  issuer: string;
  claims: NormalizedClaims;
  /** How many verified requests carried it. */
  count: number;
  firstSeen: string;
  lastSeen: string;
}

export type Direction = "allow_to_deny" | "deny_to_allow";

export interface ChangeGroup {
  namespace: string;
  project: string;
  /** Distinct identities (claim sets) in this group whose decision changes. */
  identities: number;
  /** Requests those identities made. */
  requests: number;
  /** The example job's identifying claims (ref, pipeline source, …) and when it was last seen. */
  example: Record<string, string>;
}

export interface TargetChange {
  target: string;
  direction: Direction;
  identities: number;
  requests: number;
  groups: ChangeGroup[];
}

export interface ReplayResult {
  /** Rules (of either version) naming a claim seen_identities does not keep: replayed as if it were missing. */
  unjudgedRules: string[];
  identities: number;
  /** Identities with at least one changed decision. */
  changed: number;
  unchanged: number;
  changes: TargetChange[];
}

/** Claims that say which job an example is, in the order shown; any the identity lacks are left out. */
const EXAMPLE_CLAIMS = [
  "ref_type",
  "ref",
  "ref_protected",
  "pipeline_source",
  "event_name",
  "environment",
  "user_login",
  "actor",
];

export function replayDecisions(
  before: CompiledPolicy,
  after: CompiledPolicy,
  seen: Iterable<SeenIdentity>,
): ReplayResult {
  const groups = new Map<string, Map<string, ChangeGroup>>(); // "target\u0000direction" → group key → group
  let identities = 0;
  let changed = 0;
  for (const entry of seen) {
    identities++;
    const identity = asIdentity(entry);
    const was = allowedTargets(before, identity);
    const now = allowedTargets(after, identity);
    let differs = false;
    const scope = scopeOf(entry.claims, vocabularyOf(issuerOf(after, entry.issuer) ?? issuerOf(before, entry.issuer)));
    for (const target of was)
      if (!now.has(target)) ((differs = true), add(groups, target, "allow_to_deny", entry, scope));
    for (const target of now)
      if (!was.has(target)) ((differs = true), add(groups, target, "deny_to_allow", entry, scope));
    if (differs) changed++;
  }
  const changes: TargetChange[] = [...groups].map(([key, byGroup]) => {
    const [target, direction] = key.split("\u0000") as [string, Direction];
    const list = [...byGroup.values()].sort(
      (a, b) => b.identities - a.identities || compare(a.namespace + a.project, b.namespace + b.project),
    );
    return {
      target,
      direction,
      identities: list.reduce((n, g) => n + g.identities, 0),
      requests: list.reduce((n, g) => n + g.requests, 0),
      groups: list,
    };
  });
  changes.sort((a, b) => compare(a.target, b.target) || compare(a.direction, b.direction));
  return { unjudgedRules: unjudgedRules(before, after), identities, changed, unchanged: identities - changed, changes };
}

function unjudgedRules(before: CompiledPolicy, after: CompiledPolicy): string[] {
  const names = new Set<string>();
  for (const policy of [before, after]) {
    for (const rule of policy.snapshot.rules)
      if (Object.keys(rule.match).some((claim) => REPLAY_UNRECORDED_CLAIMS.has(claim))) names.add(rule.name);
  }
  return [...names].sort();
}

function allowedTargets(policy: CompiledPolicy, identity: VerifiedIdentity): Set<string> {
  // An issuer the version does not configure gets nothing from it (its rules could not have verified it).
  if (!policy.issuers.some((issuer) => issuer.name === identity.issuer)) return new Set();
  return new Set(grantsFor(policy, identity).map((grant) => grant.target));
}

function asIdentity(entry: SeenIdentity): VerifiedIdentity {
  return {
    issuer: entry.issuer,
    issuerUrl: "",
    claims: entry.claims,
    tokenSha256: "",
    issuedAt: 0,
    expiresAt: 0,
    legacy: false,
  };
}

function issuerOf(policy: CompiledPolicy, name: string): IssuerConfig | undefined {
  return policy.issuers.find((issuer) => issuer.name === name);
}

function add(
  groups: Map<string, Map<string, ChangeGroup>>,
  target: string,
  direction: Direction,
  entry: SeenIdentity,
  { namespace, project }: { namespace: string; project: string },
): void {
  const key = `${target}\u0000${direction}`;
  let byGroup = groups.get(key);
  if (!byGroup) groups.set(key, (byGroup = new Map()));
  const groupKey = `${namespace}\u0000${project}`;
  const group = byGroup.get(groupKey);
  if (group) {
    group.identities++;
    group.requests += entry.count;
  } else {
    byGroup.set(groupKey, { namespace, project, identities: 1, requests: entry.count, example: exampleOf(entry) });
  }
}

/** Namespace (owner) and project labels in the issuer's claim names: path with id where it sends both. */
export function scopeOf(claims: NormalizedClaims, vocabulary: ClaimVocabulary): { namespace: string; project: string } {
  const claim = (name: string | undefined) =>
    name !== undefined && typeof claims[name] === "string" ? (claims[name] as string) : undefined;
  const label = (path: string | undefined, id: string | undefined, none: string) =>
    path !== undefined && id !== undefined ? `${path} (${id})` : (path ?? (id !== undefined ? `id ${id}` : none));
  return {
    namespace: label(claim(vocabulary.ownerPath), claim(vocabulary.ownerId), "(no namespace)"),
    project: label(claim(vocabulary.projectPath), claim(vocabulary.projectId), "(no project)"),
  };
}

function exampleOf(entry: SeenIdentity): Record<string, string> {
  const example: Record<string, string> = {};
  for (const claim of EXAMPLE_CLAIMS) {
    const value = entry.claims[claim];
    if (value !== undefined) example[claim] = typeof value === "string" ? value : value.join(",");
  }
  example.last_seen = entry.lastSeen;
  return example;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

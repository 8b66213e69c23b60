// Snapshot → CompiledPolicy: patterns compiled once, rules indexed so evaluation touches only the
// rules that can concern a token. Per issuer: rules scoped to exact project/namespace values sit in a
// hash map keyed by claim and value; every other rule (globs, negations, no scope) is scanned.
//
// loadSnapshot is the Worker's gate for what it reads from KV: anything that is not a well-formed,
// canonical snapshot whose content hash equals its version is refused (the store then fails closed).

import { isPlainObject } from "../encoding";
import { GatepassError } from "../errors";
import { MAX_POLICY_SNAPSHOT_BYTES } from "../limits";
import type { IssuerConfig, PolicySnapshot, RuleSpec, Target } from "../types";
import { compileCondition, type Condition } from "./condition";
import { normalizePolicy, type Path } from "./schema";
import { canonicalJson, SNAPSHOT_FORMAT, snapshotBody, snapshotVersion } from "./snapshot";

export interface CompiledRule {
  /** Position in the policy: when several rules grant a target, the first one is reported. */
  readonly order: number;
  readonly name: string;
  readonly spec: RuleSpec;
  readonly allows: ReadonlySet<string>;
  readonly conditions: readonly Condition[];
}

export interface IssuerRules {
  /** indexKey(claim, value) → rules whose scope on that claim is exactly that value, in policy order. */
  readonly exact: ReadonlyMap<string, readonly CompiledRule[]>;
  /** Rules without an exact scope: candidates for every token of the issuer. */
  readonly scanned: readonly CompiledRule[];
  /** Every rule that allows a target (explanations look at all of them). */
  readonly byTarget: ReadonlyMap<string, readonly CompiledRule[]>;
}

export interface CompiledPolicy {
  readonly version: string;
  readonly snapshot: PolicySnapshot;
  readonly issuers: readonly IssuerConfig[];
  readonly targets: ReadonlyMap<string, Target>;
  readonly rulesByIssuer: ReadonlyMap<string, IssuerRules>;
}

/**
 * Claims that scope a rule to projects, most selective first (ids cannot be renamed and reused): lint
 * requires every rule to name one, and evaluation indexes rules by their exact values.
 */
export const SCOPE_CLAIMS = ["project_id", "project_path", "namespace_id", "namespace_path"] as const;

export const indexKey = (claim: string, value: string): string => `${claim}\u0000${value}`;

export function compilePolicy(snapshot: PolicySnapshot): CompiledPolicy {
  const rulesByIssuer = new Map<string, { exact: Map<string, CompiledRule[]>; scanned: CompiledRule[]; byTarget: Map<string, CompiledRule[]> }>();
  // Large policies repeat the same conditions (ref_type: branch, ref: main, ...): compile each once.
  const conditions = new Map<string, Condition>();
  const conditionFor = (claim: string, spec: RuleSpec["match"][string]): Condition => {
    const key = JSON.stringify([claim, spec]);
    let condition = conditions.get(key);
    if (!condition) conditions.set(key, (condition = compileCondition(claim, spec)));
    return condition;
  };
  snapshot.rules.forEach((spec, order) => {
    const rule: CompiledRule = {
      order,
      name: spec.name,
      spec,
      allows: new Set(spec.allow),
      conditions: Object.entries(spec.match).map(([claim, condition]) => conditionFor(claim, condition)),
    };
    let rules = rulesByIssuer.get(spec.issuer);
    if (!rules) rulesByIssuer.set(spec.issuer, (rules = { exact: new Map(), scanned: [], byTarget: new Map() }));
    const keys = exactScope(rule);
    if (keys) for (const key of keys) push(rules.exact, key, rule);
    else rules.scanned.push(rule);
    for (const target of spec.allow) push(rules.byTarget, target, rule);
  });
  return {
    version: snapshot.version,
    snapshot,
    issuers: snapshot.issuers,
    targets: new Map(snapshot.targets.map((target) => [target.name, target])),
    rulesByIssuer,
  };
}

/** Index keys for a rule with a positive, wildcard-free condition on an index claim; undefined otherwise. */
function exactScope(rule: CompiledRule): string[] | undefined {
  for (const claim of SCOPE_CLAIMS) {
    const condition = rule.conditions.find((c) => c.claim === claim);
    if (condition && !condition.negated && condition.patterns.every((p) => p.exact)) {
      return [...new Set(condition.patterns.map((p) => indexKey(claim, p.source)))];
    }
  }
  return undefined;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

const SNAPSHOT_KEYS = ["created_at", "format", "issuers", "rules", "source_digest", "targets", "version"];
const HEX64 = /^[0-9a-f]{64}$/;

/** Parses, validates and compiles a snapshot read from KV. Throws GatepassError("policy_invalid") on anything corrupt. */
export async function loadSnapshot(text: string): Promise<CompiledPolicy> {
  if (text.length > MAX_POLICY_SNAPSHOT_BYTES) throw invalid(`it is larger than ${MAX_POLICY_SNAPSHOT_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalid("it is not JSON");
  }
  if (!isPlainObject(raw)) throw invalid("it is not a JSON object");
  const fields = raw;
  const keys = Object.keys(fields).sort();
  if (keys.join() !== SNAPSHOT_KEYS.join()) throw invalid(`its keys are ${keys.join(", ")}; expected ${SNAPSHOT_KEYS.join(", ")}`);
  if (fields.format !== SNAPSHOT_FORMAT) throw invalid(`format ${JSON.stringify(fields.format)} is not supported`);
  const { version, source_digest, created_at } = fields;
  if (typeof version !== "string" || !HEX64.test(version)) throw invalid("version is not a SHA-256 hex digest");
  if (typeof source_digest !== "string" || !HEX64.test(source_digest)) throw invalid("source_digest is not a SHA-256 hex digest");
  if (typeof created_at !== "string" || created_at.length > 40 || !Number.isFinite(Date.parse(created_at))) throw invalid("created_at is not a timestamp");

  const given = { issuers: fields.issuers, targets: fields.targets, rules: fields.rules };
  const { policy, problems } = normalizePolicy([{ name: "snapshot", value: given }], "snapshot");
  if (problems.length > 0) {
    const shown = problems.slice(0, 3).map((p) => `${formatPath(p.path)}: ${p.message}`);
    throw invalid(`${shown.join("; ")}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ""}`);
  }
  // A valid snapshot is a fixed point of normalisation: nothing defaulted, reordered or re-spelled.
  const body = snapshotBody(policy);
  if (canonicalJson(body) !== canonicalJson({ format: SNAPSHOT_FORMAT, ...given })) throw invalid("it is not in canonical form");
  if ((await snapshotVersion(body)) !== version) throw invalid("its content hash does not match its version");
  return compilePolicy({ ...body, version, source_digest, created_at });
}

function invalid(reason: string): GatepassError {
  return new GatepassError("policy_invalid", { description: `The policy snapshot was refused: ${reason}.` });
}

/** `["rules", 3, "match", "ref"]` → `rules[3].match.ref`. */
export function formatPath(path: Path): string {
  return path.map((part, i) => (typeof part === "number" ? `[${part}]` : i === 0 ? part : `.${part}`)).join("") || "(top level)";
}

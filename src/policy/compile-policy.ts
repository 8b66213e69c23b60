// Snapshot → CompiledPolicy: the issuers, the targets, and an index (rule-index.ts) that finds the rules a
// token can match without looking at the others. Rules are compiled when a token first needs them, from
// a RuleSource: checked specs (compilePolicy, the CLI's and tests'), or a stored body read one rule at a
// time (load-snapshot.ts, the Worker's). A rule refused when first needed fails every request that
// needs it with policy_unavailable, and so does an index entry that names no rule of the token's issuer.

import { GatepassError } from "../errors";
import type { IssuerConfig, NormalizedClaims, PolicySnapshot, RuleSpec, Target } from "../types";
import { compileCondition, type Condition } from "./rule-condition";
import { chooseFilings, MalformedIndexError, RuleIndex } from "./rule-index";
import { SNAPSHOT_FORMAT } from "./snapshot-format";

export interface CompiledRule {
  /** Position in the policy: when several rules grant a target, the first one is reported. */
  readonly order: number;
  readonly name: string;
  readonly spec: RuleSpec;
  readonly allows: ReadonlySet<string>;
  readonly conditions: readonly Condition[];
}

/** Where a policy's rules come from: checked specs, or a stored body read one rule at a time. */
export interface RuleSource {
  readonly count: number;
  /** The rule's spec; throws an Error whose message says why when the rule is refused. */
  spec(order: number): RuleSpec;
}

export class CompiledPolicy {
  readonly version: string;
  readonly issuers: readonly IssuerConfig[];
  readonly targets: ReadonlyMap<string, Target>;
  /**
   * The snapshot. Its `rules` compiles every rule when read (the CLI's whole-policy views); the Worker
   * reads only version, created_at, issuers and targets.
   */
  readonly snapshot: PolicySnapshot;
  /** Why a rule of this snapshot was refused when first needed; requests needing it fail closed. */
  refusal: string | undefined;
  private readonly compiled: (CompiledRule | undefined)[];
  private readonly refused = new Map<number, string>();
  private readonly byName = new Map<string, CompiledRule>();
  private byTarget: Map<string, CompiledRule[]> | undefined;
  // Large policies repeat the same conditions (ref_type: branch, ref: main, ...): compile each once.
  private readonly conditions = new Map<string, Condition>();

  constructor(
    meta: Pick<PolicySnapshot, "version" | "source_digest" | "created_at">,
    issuers: IssuerConfig[],
    targets: Target[],
    readonly index: RuleIndex,
    private readonly source: RuleSource,
  ) {
    this.version = meta.version;
    this.issuers = issuers;
    this.targets = new Map(targets.map((target) => [target.name, target]));
    this.compiled = new Array<CompiledRule | undefined>(source.count);
    const { version, source_digest, created_at } = meta;
    const snapshot = { format: SNAPSHOT_FORMAT, version, source_digest, created_at, issuers, targets } as Omit<
      PolicySnapshot,
      "rules"
    >;
    Object.defineProperty(snapshot, "rules", { enumerable: true, get: () => this.allRules().map((rule) => rule.spec) });
    this.snapshot = snapshot as PolicySnapshot;
  }

  get ruleCount(): number {
    return this.source.count;
  }

  /**
   * Calls `visit` with every rule of the token's issuer that the index finds for its claims (some more
   * than once). Throws policy_unavailable when the index names a rule that is not one of the issuer's.
   */
  candidates(issuer: string, claims: NormalizedClaims, visit: (order: number) => void): void {
    try {
      this.index.candidates(issuer, claims, visit);
    } catch (err) {
      if (!(err instanceof MalformedIndexError)) throw err;
      this.refusal ??= `snapshot ${this.version.slice(0, 12)}: ${err.message}`;
      throw unavailable(this.refusal);
    }
  }

  /** Rule `order` of `issuer` (as the index found it), compiled on first use; policy_unavailable when refused. */
  ruleOf(issuer: string, order: number): CompiledRule {
    const rule = this.rule(order);
    if (rule.spec.issuer === issuer) return rule;
    const reason =
      `snapshot ${this.version.slice(0, 12)}: the index files rule ${order} under issuer ` + `'${issuer}', not its own`;
    this.refusal ??= reason;
    throw unavailable(reason);
  }

  /** Rule `order`, compiled on first use. Throws policy_unavailable when the stored rule is refused. */
  rule(order: number): CompiledRule {
    const known = this.compiled[order];
    if (known) return known;
    if (!(Number.isSafeInteger(order) && order >= 0 && order < this.source.count)) {
      const reason =
        `snapshot ${this.version.slice(0, 12)}: the index names rule ` +
        `${String(order).slice(0, 20)}, which it does not have`;
      this.refusal ??= reason;
      throw unavailable(reason);
    }
    const refused = this.refused.get(order);
    if (refused === undefined) {
      try {
        return this.compile(order, this.source.spec(order));
      } catch (err) {
        const reason =
          `rule ${order} of snapshot ${this.version.slice(0, 12)} was refused: ` +
          `${err instanceof Error ? err.message : String(err)}`;
        this.refused.set(order, reason);
        this.refusal ??= reason;
      }
    }
    throw unavailable(this.refused.get(order)!);
  }

  /** Every rule, compiled (offline views only: the CLI's explain and tests). */
  allRules(): CompiledRule[] {
    return Array.from({ length: this.source.count }, (_, order) => this.rule(order));
  }

  /** Every rule of `issuer` that allows `target`, in policy order (offline views: compiles every rule). */
  rulesAllowing(issuer: string, target: string): CompiledRule[] {
    if (!this.byTarget) {
      this.byTarget = new Map();
      for (const rule of this.allRules()) {
        for (const allowed of rule.allows) {
          const key = `${rule.spec.issuer}\u0000${allowed}`;
          const list = this.byTarget.get(key);
          if (list) list.push(rule);
          else this.byTarget.set(key, [rule]);
        }
      }
    }
    return this.byTarget.get(`${issuer}\u0000${target}`) ?? [];
  }

  /** The rule of `issuer` named `name` (the granting rule of a decision), compiling rules until found. */
  ruleNamed(issuer: string, name: string): CompiledRule | undefined {
    const known = this.byName.get(`${issuer}\u0000${name}`);
    if (known) return known;
    // A decision's rule is always compiled already; this scan is only the fallback that keeps it correct.
    return this.allRules().find((rule) => rule.spec.issuer === issuer && rule.name === name);
  }

  private compile(order: number, spec: RuleSpec): CompiledRule {
    const rule: CompiledRule = {
      order,
      name: spec.name,
      spec,
      allows: new Set(spec.allow),
      conditions: Object.entries(spec.match).map(([claim, condition]) => {
        const key = JSON.stringify([claim, condition]);
        let compiled = this.conditions.get(key);
        if (!compiled) this.conditions.set(key, (compiled = compileCondition(claim, condition)));
        return compiled;
      }),
    };
    this.compiled[order] = rule;
    const named = `${spec.issuer}\u0000${spec.name}`;
    if (!this.byName.has(named)) this.byName.set(named, rule);
    return rule;
  }
}

function unavailable(cause: string): GatepassError {
  return new GatepassError("policy_unavailable", {
    description: "The active policy has a rule gatepass refused to load; an admin must push the policies again.",
    cause,
  });
}

/** Compiles a checked snapshot (the CLI's, tests'): filings chosen here, rules compiled when first used. */
export function compilePolicy(snapshot: PolicySnapshot): CompiledPolicy {
  const index = RuleIndex.build(snapshot.rules, chooseFilings(snapshot.rules));
  return new CompiledPolicy(snapshot, snapshot.issuers, snapshot.targets, index, {
    count: snapshot.rules.length,
    spec: (order) => snapshot.rules[order]!,
  });
}

import { describe, expect, it } from "vitest";
import { isGatepassError } from "../../../src/errors";
import {
  MAX_CLAIM_ARRAY_LENGTH,
  MAX_CLAIM_VALUE_LENGTH,
  MAX_EXPLAINED_RULES,
  MAX_INDEX_PREFIX_SEGMENTS,
} from "../../../src/limits";
import { compilePolicy } from "../../../src/policy/compile-policy";
import { chooseFilings, keyOf, RuleIndex } from "../../../src/policy/rule-index";
import { denialError, evaluate, explainTarget, grantsFor } from "../../../src/policy/evaluate";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import type { PolicyParts } from "../../../src/policy/policy-schema";
import type { RuleSpec } from "../../../src/types";
import { CREATED_AT, DIGEST, identity, INFRA_MAIN, policyOf, snapshotOf, sources } from "./fixtures";

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return isGatepassError(err) ? err.code : "not a GatepassError";
  }
  return undefined;
};

describe("evaluate", () => {
  it("allows a target when every condition of a rule of the token's issuer holds, naming the rule", async () => {
    const policy = await policyOf();
    expect(evaluate(policy, identity(), "deployer")).toEqual({ allowed: true, target: "deployer", rule: "infra-main" });
    // Both rules allow reader; the first in policy order is reported.
    expect(evaluate(policy, identity(), "reader")).toEqual({ allowed: true, target: "reader", rule: "infra-main" });
  });

  it("denies by default", async () => {
    const policy = await policyOf();
    expect(evaluate(policy, identity(), "registry")).toEqual({ allowed: false, target: "registry" });
    expect(evaluate(policy, identity({}), "reader")).toEqual({ allowed: false, target: "reader" });
  });

  it("refuses a look-alike project, a tag named like the branch, unprotected refs and merge requests", async () => {
    const policy = await policyOf();
    const denied = (claims: Record<string, string>) =>
      evaluate(policy, identity({ ...INFRA_MAIN, ...claims }), "deployer").allowed;
    expect(denied({ project_path: "platform/infra-evil" })).toBe(false);
    expect(denied({ project_path: "platform/infra/sub" })).toBe(false);
    expect(denied({ ref_type: "tag" })).toBe(false);
    expect(denied({ ref_protected: "false" })).toBe(false);
    expect(denied({ pipeline_source: "merge_request_event" })).toBe(false);
    expect(denied({ ref: "main2" })).toBe(false);
  });

  it("binds rules to their issuer: the same claims from another issuer get nothing", async () => {
    const policy = await policyOf();
    expect(evaluate(policy, identity(INFRA_MAIN, "other-gitlab"), "deployer").allowed).toBe(false);
    expect(grantsFor(policy, identity(INFRA_MAIN, "other-gitlab"))).toEqual([]);
    expect(grantsFor(policy, identity(INFRA_MAIN, "unconfigured"))).toEqual([]);
  });

  it("never matches a missing claim, not even a negation", async () => {
    const policy = await policyOf();
    const { pipeline_source: _omitted, ...withoutSource } = INFRA_MAIN;
    // platform-reads only needs namespace_path and pipeline_source: { not: merge_request_event }.
    expect(evaluate(policy, identity({ namespace_path: "platform" }), "reader").allowed).toBe(false);
    expect(evaluate(policy, identity(withoutSource), "reader").allowed).toBe(false);
    expect(evaluate(policy, identity({ namespace_path: "platform", pipeline_source: "push" }), "reader")).toMatchObject(
      { allowed: true, rule: "platform-reads" },
    );
  });

  it("matches array claims when any element matches, and ignores malformed or oversized values", async () => {
    const policy = await policyOf();
    const apps = (groups: unknown) => identity({ namespace_path: "apps/web", groups_direct: groups as string[] });
    expect(evaluate(policy, apps(["apps/other", "apps/registry-pushers"]), "registry").allowed).toBe(true);
    expect(evaluate(policy, apps(["apps/other"]), "registry").allowed).toBe(false);
    expect(evaluate(policy, apps([]), "registry").allowed).toBe(false);
    // An element that is no claim value at all (an object) makes the claim malformed: it matches nothing.
    expect(evaluate(policy, apps([{}, "apps/registry-x"]), "registry").allowed).toBe(false);
    expect(evaluate(policy, apps(Array(MAX_CLAIM_ARRAY_LENGTH + 1).fill("apps/registry-x")), "registry").allowed).toBe(
      false,
    );
    expect(evaluate(policy, apps(`apps/registry-${"x".repeat(MAX_CLAIM_VALUE_LENGTH)}`), "registry").allowed).toBe(
      false,
    );
    // An oversized value does not satisfy a negation either (platform-reads: pipeline_source: { not: merge_request_event }).
    const reads = (source: string) =>
      evaluate(policy, identity({ namespace_path: "platform", pipeline_source: source }), "reader").allowed;
    expect(reads("x".repeat(MAX_CLAIM_VALUE_LENGTH))).toBe(true);
    expect(reads("x".repeat(MAX_CLAIM_VALUE_LENGTH + 1))).toBe(false);
  });

  it("holds a negation on an array claim only when no element matches", async () => {
    const policy = await policyOf(
      sources({
        rules: `rules:\n  - name: not-contractors\n    issuer: corp-gitlab\n    match: { namespace_path: "apps/**", groups_direct: { not: "apps/contractors" } }\n    allow: [registry]\n`,
      }),
    );
    const member = (groups: string[]) =>
      evaluate(policy, identity({ namespace_path: "apps/web", groups_direct: groups }), "registry").allowed;
    expect(member(["apps/web-devs"])).toBe(true);
    expect(member(["apps/contractors"])).toBe(false);
    // Another group does not outweigh the excluded one.
    expect(member(["apps/web-devs", "apps/contractors"])).toBe(false);
    // An oversized element could hide the excluded group: the claim satisfies nothing (fail closed).
    expect(member(["apps/web-devs", "x".repeat(MAX_CLAIM_VALUE_LENGTH + 1)])).toBe(false);
  });

  it("does not read inherited properties as claims", async () => {
    const policy = await policyOf(
      sources({
        rules: `rules:\n  - name: proto\n    issuer: other-gitlab\n    match: { project_path: "a/**", __proto__: { not: x } }\n    allow: [registry]\n`,
      }),
    ).catch((err: Error) => err);
    // A `__proto__` condition could silently vanish from a plain object: it is refused at parse time.
    expect(policy).toBeInstanceOf(Error);
    expect((policy as Error).message).toMatch(/rules\.yaml:4:\d+: error: '__proto__' is not a claim name/);
    const generic = await policyOf(
      sources({
        issuers:
          "issuers:\n  - { name: other-gitlab, kind: generic, url: https://ci.example, audiences: [x] }\n  - { name: corp-gitlab, url: https://gitlab.example.com, audiences: [x] }\n",
        rules: `rules:\n  - name: proto\n    issuer: other-gitlab\n    match: { repo: "a/**", constructor: { not: x } }\n    allow: [registry]\n    acknowledge: { broad: true }\n`,
      }),
    );
    expect(evaluate(generic, identity({ repo: "a/b" }, "other-gitlab"), "registry").allowed).toBe(false);
    expect(evaluate(generic, identity({ repo: "a/b", constructor: "y" }, "other-gitlab"), "registry").allowed).toBe(
      true,
    );
  });

  it("throws target_unknown for a target that is not configured, without echoing odd input", async () => {
    const policy = await policyOf();
    expect(codeOf(() => evaluate(policy, identity(), "nope"))).toBe("target_unknown");
    expect(codeOf(() => explainTarget(policy, identity(), "nope"))).toBe("target_unknown");
    try {
      evaluate(policy, identity(), "<script>");
    } catch (err) {
      expect(isGatepassError(err) && err.description).not.toContain("<script>");
    }
  });
});

describe("grantsFor", () => {
  it("lists every allowed target once with its first granting rule, sorted by target", async () => {
    const policy = await policyOf();
    expect(grantsFor(policy, identity())).toEqual([
      { target: "deployer", rule: "infra-main" },
      { target: "reader", rule: "infra-main" },
    ]);
    expect(grantsFor(policy, identity({ ...INFRA_MAIN, ref: "dev" }))).toEqual([
      { target: "reader", rule: "platform-reads" },
    ]);
  });
});

describe("explainTarget", () => {
  it("lists the rules that allow the target with the failed conditions, in the token's own values only", async () => {
    const policy = await policyOf();
    const explanation = explainTarget(
      policy,
      identity({ ...INFRA_MAIN, ref: "feature/x", ref_protected: "false" }),
      "deployer",
    );
    expect(explanation).toEqual({
      target: "deployer",
      allowed: false,
      rules: [
        {
          rule: "infra-main",
          matched: false,
          failures: [
            { claim: "ref", actual: "feature/x" },
            { claim: "ref_protected", actual: "false" },
          ],
        },
      ],
    });
  });

  it("reports missing claims as null, the granting rule when allowed, and only the token issuer's rules", async () => {
    const policy = await policyOf();
    const reader = explainTarget(policy, identity({ namespace_path: "platform", pipeline_source: "push" }), "reader");
    expect(reader.allowed).toBe(true);
    expect(reader.rule).toBe("platform-reads");
    // Closest first: the matching rule, then infra-main with its missing claims.
    expect(reader.rules[0]).toEqual({ rule: "platform-reads", matched: true, failures: [] });
    expect(reader.rules[1]?.failures).toContainEqual({ claim: "project_path", actual: null });
    expect(explainTarget(policy, identity(INFRA_MAIN, "other-gitlab"), "reader")).toEqual({
      target: "reader",
      allowed: false,
      rules: [],
    });
  });

  it("caps the list of explained rules", async () => {
    const rules = Array.from(
      { length: MAX_EXPLAINED_RULES + 5 },
      (_, i) => `  - { name: r${i}, issuer: corp-gitlab, match: { project_path: p/${i} }, allow: [reader] }`,
    );
    const policy = await policyOf(sources({ rules: `rules:\n${rules.join("\n")}\n` }));
    const explanation = explainTarget(policy, identity(), "reader");
    expect(explanation.rules).toHaveLength(MAX_EXPLAINED_RULES);
    expect(explanation.omitted).toBe(5);
  });
});

describe("denialError", () => {
  it("is policy_denied (403) naming the target and the token's project, ref and ref type", () => {
    const err = denialError(identity(), "deployer");
    expect(err.code).toBe("policy_denied");
    expect(err.status).toBe(403);
    expect(err.description).toContain("'deployer'");
    expect(err.description).toContain("'platform/infra'");
    expect(err.description).toContain("ref 'main'");
    expect(err.description).toContain("ref_type 'branch'");
    expect(err.details).toEqual({ target: "deployer" });
    expect(denialError(identity({}), "deployer").description).toContain("project '(none)'");
    expect(denialError(identity({ ...INFRA_MAIN, ref: "r".repeat(1000) }), "deployer").description).toContain(
      `ref '${"r".repeat(200)}…'`,
    );
  });
});

describe("the index", () => {
  it("files each rule under its most selective literal condition, and looks only at the rules a token can match", async () => {
    const { snapshot } = await snapshotOf();
    expect(chooseFilings(snapshot.rules)).toEqual([
      { claim: "project_path", keys: ["=platform/infra"] },
      { claim: "namespace_path", keys: ["^platform"] },
      // groups_direct "apps/registry-*" has the same key; scope claims win ties.
      { claim: "namespace_path", keys: ["^apps"] },
    ]);
    const policy = compilePolicy(snapshot);
    const visited = (claims: Record<string, string>) => {
      const orders: number[] = [];
      policy.index.candidates("corp-gitlab", claims, (order) => orders.push(order));
      return orders.sort();
    };
    expect(visited(INFRA_MAIN)).toEqual([0, 1]);
    expect(visited({ project_path: "apps/web", namespace_path: "apps" })).toEqual([2]);
    expect(visited({ namespace_path: "elsewhere" })).toEqual([]);
  });

  it("keys a pattern by its exact value or its literal leading segments (at most MAX_INDEX_PREFIX_SEGMENTS)", () => {
    expect(keyOf("platform/infra")).toBe("=platform/infra");
    expect(keyOf("team-5/**")).toBe("^team-5");
    expect(keyOf("group/*")).toBe("^group");
    expect(keyOf("a/b*/c")).toBe("^a");
    expect(keyOf(["a", "b", "c", "d", "e", "f", "*"].join("/"))).toBe(
      `^${["a", "b", "c", "d", "e", "f"].slice(0, MAX_INDEX_PREFIX_SEGMENTS).join("/")}`,
    );
    expect(keyOf("*/infra")).toBeUndefined();
    expect(keyOf("plat*/infra")).toBeUndefined();
  });

  it("files under the condition fewest rules share; negations and leading wildcards are never filed, and unfiled rules are looked at for every token", () => {
    const rule = (name: string, match: RuleSpec["match"]): RuleSpec => ({
      name,
      issuer: "corp-gitlab",
      match,
      allow: ["reader"],
    });
    const rules = [
      rule("a", { ref_type: "branch", namespace_path: "team-1/**" }),
      rule("b", { ref_type: "branch", namespace_path: "team-2/**" }),
      rule("c", { ref_type: "branch", namespace_path: ["team-3/**", "team-4/*"] }),
      rule("d", { namespace_path: { not: "team-1/**" }, project_path: "*/app" }),
    ];
    expect(chooseFilings(rules)).toEqual([
      { claim: "namespace_path", keys: ["^team-1"] },
      { claim: "namespace_path", keys: ["^team-2"] },
      { claim: "namespace_path", keys: ["^team-3", "^team-4"] },
      undefined,
    ]);
    const index = RuleIndex.build(rules, chooseFilings(rules));
    const visited = (claims: Record<string, string | string[]>) => {
      const orders: number[] = [];
      index.candidates("corp-gitlab", claims, (order) => orders.push(order));
      return orders.sort();
    };
    expect(visited({ namespace_path: "team-4/x/y" })).toEqual([2, 3]);
    expect(visited({ namespace_path: "team-1" })).toEqual([0, 3]);
    expect(visited({ namespace_path: ["team-2/x", "team-3"] })).toEqual([1, 2, 3]);
    expect(visited({ namespace_path: "x".repeat(MAX_CLAIM_VALUE_LENGTH + 1) })).toEqual([3]);
  });

  it("decides exactly like a scan over every rule (randomised policies)", async () => {
    // Deterministic pseudo-random generator so failures reproduce.
    let seed = 42;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const pick = <T>(xs: readonly T[]) => xs[rand(xs.length)]!;
    const paths = ["g/a", "g/b", "g/a/c", "h/a", "g/a-evil"];
    const conditionFor = (claim: string): RuleSpec["match"][string] => {
      const values = claim.endsWith("_id")
        ? ["1", "2", "3"]
        : claim === "ref"
          ? ["main", "dev", "v*"]
          : [...paths, "g/*", "g/**", "**/a"];
      const kind = rand(4);
      if (kind === 0) return pick(values);
      if (kind === 1) return [pick(values), pick(values)];
      if (kind === 2) return { not: pick(values) };
      return pick(values);
    };
    const claimsPool = ["project_id", "project_path", "namespace_id", "namespace_path", "ref"];
    const rules: RuleSpec[] = Array.from({ length: 300 }, (_, i) => {
      const match: RuleSpec["match"] = {};
      for (const claim of claimsPool) if (rand(2)) match[claim] = conditionFor(claim);
      return { name: `r${i}`, issuer: "corp-gitlab", match, allow: [pick(["reader", "registry", "deployer"])] };
    });
    const base = (await snapshotOf()).snapshot;
    const parts: PolicyParts = { issuers: base.issuers, targets: base.targets, rules };
    const policy = compilePolicy(
      (await buildSnapshot(parts, { sourceDigest: DIGEST, createdAt: CREATED_AT })).snapshot,
    );
    for (let i = 0; i < 500; i++) {
      const claims: Record<string, string> = {};
      for (const claim of claimsPool)
        if (rand(5))
          claims[claim] = claim.endsWith("_id")
            ? pick(["1", "2", "3"])
            : claim === "ref"
              ? pick(["main", "dev", "v1"])
              : pick(paths);
      const id = identity(claims);
      for (const target of ["reader", "registry", "deployer"]) {
        const naive = explainTarget(policy, id, target); // looks at every rule allowing the target
        const first = rules.findIndex(
          (r) => r.allow.includes(target) && naive.rules.some((e) => e.rule === r.name && e.matched),
        );
        const decision = evaluate(policy, id, target);
        expect(decision.allowed, JSON.stringify({ claims, target })).toBe(first >= 0);
        if (decision.allowed) expect(decision.rule).toBe(rules[first]!.name);
      }
    }
  });
});

// `policies plan` and `policies diff`: the static diff and the replay as pure functions (the replay
// held to evaluate() on both versions by a property), then the commands against local KV and D1.
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planMarkdown, planText, type Plan } from "../../cli/policy/plan-report";
import { diffPolicies } from "../../cli/policy/policy-diff";
import { replayDecisions, type SeenIdentity } from "../../cli/policy/policy-replay";
import { sqlString } from "../../cli/policy/policy-storage";
import { closeLocalStorage, wrangler } from "../../cli/wrangler";
import { compilePolicy } from "../../src/policy/compile-policy";
import { evaluate } from "../../src/policy/evaluate";
import { buildSnapshot } from "../../src/policy/snapshot-format";
import type { PolicyParts } from "../../src/policy/policy-schema";
import type { IssuerConfig, RuleSpec, Target, VerifiedIdentity } from "../../src/types";
import { gatepassInProcess } from "../support/cli";
import { copyMigratedState } from "../support/wrangler-dev";

const ROOT = path.resolve(__dirname, "../..");

const issuer: IssuerConfig = {
  name: "corp",
  url: "https://gitlab.example.com",
  kind: "gitlab",
  aliases: [],
  audiences: ["https://gatepass.example.com"],
  algorithms: ["RS256"],
  keys: { source: "discovery" },
  max_token_age_seconds: 3600,
  accept_legacy_ci_job_jwt: false,
};
const target = (name: string, privileged: boolean): Target => ({
  name,
  type: "oidc",
  audience: `aud-${name}`,
  privileged,
  signing_alg: "ES256",
  max_lifetime_seconds: 600,
});
const rule = (name: string, match: RuleSpec["match"], allow: string[]): RuleSpec => ({
  name,
  issuer: "corp",
  match,
  allow,
});
const protectedMain = { ref_type: "branch", ref: "main", ref_protected: "true", pipeline_source: ["push", "web"] };

const before: PolicyParts = {
  issuers: [issuer],
  targets: [target("deploy", true), target("read", false)],
  rules: [
    rule("deploys", { project_id: "101", ...protectedMain }, ["deploy"]),
    rule("reads", { namespace_id: "10" }, ["read"]),
  ],
};

describe("diffPolicies", () => {
  it("lists per target the rules added, removed and changed field by field, and privileged targets newly reachable by scope", () => {
    const after: PolicyParts = {
      ...before,
      targets: [target("deploy", true), { ...target("read", false), max_lifetime_seconds: 300 }],
      rules: [
        rule("deploys", { project_id: "101", ...protectedMain, ref: ["main", "release/*"] }, ["deploy"]),
        rule("more-deploys", { project_path: "apps/web", ...protectedMain }, ["deploy"]),
      ],
    };
    const diff = diffPolicies(before, after);
    expect(diff.issuers).toEqual([]);
    const deploy = diff.targets.find((t) => t.target === "deploy")!;
    expect(deploy.kind).toBeUndefined();
    expect(deploy.rules).toEqual([
      {
        rule: "deploys",
        kind: "changed",
        fields: [{ field: "match.ref", before: "main", after: ["main", "release/*"] }],
      },
      { rule: "more-deploys", kind: "added", fields: [] },
    ]);
    expect(deploy.newlyReachable).toEqual([
      { rule: "deploys", issuer: "corp", scope: 'project_id "101"' },
      { rule: "more-deploys", issuer: "corp", scope: 'project_path "apps/web" (by path only)' },
    ]);
    const read = diff.targets.find((t) => t.target === "read")!;
    expect(read).toMatchObject({
      kind: "changed",
      fields: [{ field: "max_lifetime_seconds", before: 600, after: 300 }],
    });
    expect(read.rules).toEqual([{ rule: "reads", kind: "removed", fields: [] }]);
    expect(read.newlyReachable).toEqual([]);
    // The path-only rule to a privileged target is a lint finding gained; nothing was lost.
    expect(diff.lint.gained).toContainEqual(
      expect.stringMatching(/^rule 'more-deploys': warning privileged-path-scope: /),
    );
    expect(diff.lint.lost).toEqual([]);
  });

  it("says nothing for identical versions, and every rule of a target that became privileged reaches it anew", () => {
    expect(diffPolicies(before, before)).toEqual({ issuers: [], targets: [], lint: { gained: [], lost: [] } });
    const promoted = diffPolicies(before, { ...before, targets: [target("deploy", true), target("read", true)] });
    const read = promoted.targets.find((t) => t.target === "read")!;
    expect(read.fields).toEqual([{ field: "privileged", before: false, after: true }]);
    expect(read.newlyReachable.map((r) => r.rule)).toEqual(["reads"]);
  });
});

async function compiled(parts: PolicyParts) {
  const { snapshot } = await buildSnapshot(parts, {
    sourceDigest: "0".repeat(64),
    createdAt: "2026-12-01T00:00:00.000Z",
  });
  return compilePolicy(snapshot);
}

const seen = (claims: Record<string, string>, count = 1): SeenIdentity => ({
  issuer: "corp",
  claims,
  count,
  firstSeen: "2026-12-01T00:00:00.000Z",
  lastSeen: "2026-12-02T00:00:00.000Z",
});

describe("replayDecisions", () => {
  it("groups changed decisions by target, direction, namespace and project, with counts and an example job", async () => {
    const after: PolicyParts = {
      ...before,
      rules: [rule("deploys", { project_id: "101", ...protectedMain, ref: "release/*" }, ["deploy"]), before.rules[1]!],
    };
    const job = {
      project_id: "101",
      project_path: "platform/infra",
      namespace_id: "10",
      namespace_path: "platform",
      ref_type: "branch",
      ref_protected: "true",
      pipeline_source: "push",
    };
    const result = replayDecisions(await compiled(before), await compiled(after), [
      seen({ ...job, ref: "main" }, 7),
      seen({ ...job, ref: "main", pipeline_source: "web" }, 2),
      seen({ ...job, ref: "release/1" }, 3),
      seen({ ...job, ref: "feature" }, 5),
    ]);
    expect(result).toMatchObject({ unjudgedRules: [], identities: 4, changed: 3, unchanged: 1 });
    expect(result.changes).toEqual([
      {
        target: "deploy",
        direction: "allow_to_deny",
        identities: 2,
        requests: 9,
        groups: [
          {
            namespace: "platform (10)",
            project: "platform/infra (101)",
            identities: 2,
            requests: 9,
            example: {
              ref_type: "branch",
              ref: "main",
              ref_protected: "true",
              pipeline_source: "push",
              last_seen: "2026-12-02T00:00:00.000Z",
            },
          },
        ],
      },
      {
        target: "deploy",
        direction: "deny_to_allow",
        identities: 1,
        requests: 3,
        groups: [expect.objectContaining({ identities: 1, requests: 3 })],
      },
    ]);
  });

  it("denies everything to identities of an issuer the version no longer configures", async () => {
    const other = { ...issuer, name: "other", url: "https://other.example.com" };
    const withOther: PolicyParts = { ...before, issuers: [issuer, other] };
    const result = replayDecisions(await compiled(before), await compiled(withOther), [
      { ...seen({ namespace_id: "10" }), issuer: "other" },
    ]);
    expect(result.changed).toBe(0);
    const back = replayDecisions(await compiled(before), await compiled(before), [seen({ namespace_id: "10" })]);
    expect(back).toMatchObject({ changed: 0, unchanged: 1, changes: [] });
    const byJob = await compiled({ ...before, rules: [...before.rules, rule("by-job", { job_id: "1" }, ["read"])] });
    expect(replayDecisions(await compiled(before), byJob, []).unjudgedRules).toEqual(["by-job"]);
  });

  it("agrees with evaluate() on both versions for every identity and target (property)", async () => {
    const value = fc.constantFrom("101", "102", "main", "feature", "true", "false", "push", "web", "10", "20");
    const claimsArb = fc.record(
      {
        project_id: value,
        namespace_id: value,
        ref: value,
        ref_type: fc.constantFrom("branch", "tag"),
        ref_protected: value,
        pipeline_source: value,
      },
      { requiredKeys: [] },
    );
    const matchArb = fc.dictionary(
      fc.constantFrom("project_id", "namespace_id", "ref", "ref_protected", "pipeline_source"),
      fc.oneof(
        value,
        fc.array(value, { minLength: 1, maxLength: 3 }),
        value.map((v) => ({ not: v })),
      ),
      { maxKeys: 3 },
    );
    const rulesArb = fc.array(fc.tuple(matchArb, fc.subarray(["deploy", "read"], { minLength: 1 })), {
      minLength: 0,
      maxLength: 6,
    });
    await fc.assert(
      fc.asyncProperty(
        rulesArb,
        rulesArb,
        fc.array(claimsArb, { maxLength: 12 }),
        async (rulesA, rulesB, claimSets) => {
          const parts = (rules: typeof rulesA): PolicyParts => ({
            ...before,
            rules: rules.map(([match, allow], i) => rule(`r${i}`, match, allow)),
          });
          const [a, b] = await Promise.all([compiled(parts(rulesA)), compiled(parts(rulesB))]);
          const result = replayDecisions(
            a,
            b,
            claimSets.map((claims) => seen(claims as Record<string, string>)),
          );
          const expected = new Map<string, number>();
          let changed = 0;
          for (const claims of claimSets) {
            const identity: VerifiedIdentity = {
              issuer: "corp",
              issuerUrl: "",
              claims,
              tokenSha256: "",
              issuedAt: 0,
              expiresAt: 0,
              legacy: false,
            };
            let differs = false;
            for (const t of ["deploy", "read"]) {
              const was = evaluate(a, identity, t).allowed;
              const now = evaluate(b, identity, t).allowed;
              if (was === now) continue;
              differs = true;
              const key = `${t} ${was ? "allow_to_deny" : "deny_to_allow"}`;
              expected.set(key, (expected.get(key) ?? 0) + 1);
            }
            if (differs) changed++;
          }
          expect(result.changed).toBe(changed);
          expect(new Map(result.changes.map((c) => [`${c.target} ${c.direction}`, c.identities]))).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("plan reports", () => {
  it("escapes what identities carry in Markdown table cells", async () => {
    const plan: Plan = {
      before: { version: "a".repeat(64), label: "active" },
      after: { version: "b".repeat(64), label: "local" },
      diff: { issuers: [], targets: [], lint: { gained: [], lost: [] } },
      replay: {
        unjudgedRules: ["by-job"],
        days: 30,
        identities: 1,
        changed: 1,
        unchanged: 0,
        changes: [
          {
            target: "deploy",
            direction: "deny_to_allow",
            identities: 1,
            requests: 1,
            groups: [
              { namespace: "a|b", project: "<img src=x>", identities: 1, requests: 1, example: { ref: "x`y\nz" } },
            ],
          },
        ],
      },
    };
    const markdown = planMarkdown(plan);
    expect(markdown).toContain("a\\|b / &lt;img src=x&gt;: 1, e.g. ref=x'y z");
    expect(markdown).not.toContain("<img");
    expect(planText(plan)).toContain("deploy: deny → allow for 1 identities (1 requests)");
    expect(planText(plan)).toContain("note: rules by-job name claims replay does not keep");
  });
});

describe("gatepass policies plan and diff (local storage)", () => {
  let work: string;
  let persist: string;
  const storage = () => ["--local", "--persist-to", persist];
  const gatepass = (...args: string[]) => gatepassInProcess("policies", ...args);

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "gatepass-plan-"));
    persist = path.join(work, "state");
    await copyMigratedState(persist);
  });
  afterAll(async () => {
    await closeLocalStorage();
    await rm(work, { recursive: true, force: true });
  });

  async function recordSeen(claims: Record<string, string>, count: number, lastSeen: string): Promise<void> {
    const file = path.join(work, "seen.sql");
    const key = Math.random().toString(16).slice(2).padEnd(64, "0");
    await writeFile(
      file,
      `INSERT INTO seen_identities (claims_sha256, issuer, claims, first_seen, last_seen, count) VALUES (${sqlString(key)}, 'corp-gitlab', ${sqlString(JSON.stringify(claims))}, ${sqlString(lastSeen)}, ${sqlString(lastSeen)}, ${count});\n`,
    );
    await wrangler(["d1", "execute", "DB", "--file", file, "--yes", ...storage()], { cwd: ROOT });
  }

  it("refuses to plan before any push, in one sentence (exit 1)", async () => {
    const result = await gatepass("plan", "--dir", path.join(ROOT, "policies"), ...storage());
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("no policy version is active yet: push one first (gatepass policies push)");
  });

  it("plans the local change against the active version: static part, replay, exit 3; exit 0 when nothing changes", async () => {
    expect((await gatepass("push", "--dir", path.join(ROOT, "policies"), "--by", "first", ...storage())).code).toBe(0);
    const recent = new Date().toISOString();
    const infraMain = {
      project_id: "101",
      project_path: "platform/infra",
      namespace_id: "10",
      namespace_path: "platform",
      ref_type: "branch",
      ref: "main",
      ref_protected: "true",
      pipeline_source: "push",
    };
    await recordSeen(infraMain, 40, recent);
    await recordSeen({ ...infraMain, ref: "feature", ref_protected: "false" }, 3, recent);
    await recordSeen({ ...infraMain, pipeline_source: "web" }, 5, "2020-01-01T00:00:00.000Z"); // older than --days

    const unchanged = await gatepass("plan", "--dir", path.join(ROOT, "policies"), ...storage());
    expect(unchanged.code).toBe(0);
    expect(unchanged.stdout).toContain("no changes to issuers, targets or rules");
    expect(unchanged.stdout).toContain(
      "replay: 2 identities seen in the last 30 days; 0 with a changed decision, 2 unchanged",
    );

    // Take aws-readonly away from infra's main deploys.
    const dir = path.join(work, "edited");
    await cp(path.join(ROOT, "policies"), dir, { recursive: true });
    const rules = await readFile(path.join(dir, "rules.yaml"), "utf8");
    await writeFile(
      path.join(dir, "rules.yaml"),
      rules.replace("allow: [gcp-deployer, aws-readonly]", "allow: [gcp-deployer]"),
    );
    await rm(path.join(dir, "rules.test.yaml"));
    const planned = await gatepass("plan", "--dir", dir, ...storage());
    expect(planned.stderr).toBe("");
    expect(planned.code).toBe(0);
    expect(planned.stdout).toContain("rule infra-main-deploys: changed");
    expect(planned.stdout).toContain('allow: ["gcp-deployer","aws-readonly"] → ["gcp-deployer"]');
    // platform-reads still grants aws-readonly to platform/** outside merge requests: no decision changes.
    expect(planned.stdout).toContain("0 with a changed decision");

    await writeFile(
      path.join(dir, "rules.yaml"),
      rules
        .replace('namespace_path: "platform/**"', 'namespace_path: "elsewhere/**"')
        .replace("allow: [gcp-deployer, aws-readonly]", "allow: [gcp-deployer]"),
    );
    const json = await gatepass("plan", "--dir", dir, "--json", ...storage());
    expect(json.code).toBe(3);
    const plan = JSON.parse(json.stdout) as Plan;
    expect(plan.replay).toMatchObject({ days: 30, identities: 2, changed: 2 });
    expect(plan.replay!.changes).toEqual([
      expect.objectContaining({ target: "aws-readonly", direction: "allow_to_deny", identities: 2, requests: 43 }),
    ]);
    const markdown = await gatepass("plan", "--dir", dir, "--markdown", "--days", "90", ...storage());
    expect(markdown.code).toBe(3);
    expect(markdown.stdout).toContain("**2 of 2 identities** seen in the last 90 days get a different decision.");
  });

  it("plans against another policies directory (--against-dir): the static part only, no storage; exit 3 when they differ", async () => {
    const base = path.join(work, "base");
    await cp(path.join(ROOT, "policies"), base, { recursive: true });
    const same = await gatepass("plan", "--dir", path.join(ROOT, "policies"), "--against-dir", base);
    expect(same).toMatchObject({ code: 0, stderr: "" });
    expect(same.stdout).toContain("no changes to issuers, targets or rules");
    expect(same.stdout).not.toContain("replay:");
    const targets = await readFile(path.join(base, "targets.yaml"), "utf8");
    await writeFile(
      path.join(base, "targets.yaml"),
      targets.replace("description: Local development target", "description: Older development target"),
    );
    const changed = await gatepass("plan", "--dir", path.join(ROOT, "policies"), "--against-dir", base, "--markdown");
    expect(changed.code).toBe(3);
    expect(changed.stdout).toMatch(/`base [0-9a-f]{12}` → `local [0-9a-f]{12}`/);
    await writeFile(path.join(base, "targets.yaml"), "targets: [oops\n");
    const invalid = await gatepass("plan", "--dir", path.join(ROOT, "policies"), "--against-dir", base);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain(`plan refused: the policies in ${base} are invalid`);
    expect((await gatepass("plan", "--against-dir", base, "--remote")).code).toBe(2);
  });

  it("diffs two pushed versions (exit 3 when they differ, 0 when not) and refuses unknown versions", async () => {
    const dir = path.join(work, "second");
    await cp(path.join(ROOT, "policies"), dir, { recursive: true });
    const targets = await readFile(path.join(dir, "targets.yaml"), "utf8");
    await writeFile(
      path.join(dir, "targets.yaml"),
      targets.replace("description: Local development target", "description: Changed development target"),
    );
    expect((await gatepass("push", "--dir", dir, "--by", "second", ...storage())).code).toBe(0);
    const history = (await gatepass("history", ...storage())).stdout
      .trim()
      .split("\n")
      .map((line) => line.slice(2, 66));
    const [newest, oldest] = history as [string, string];
    const changed = await gatepass("diff", oldest.slice(0, 8), newest, ...storage());
    expect(changed.code).toBe(3);
    expect(changed.stdout).toContain("target demo-oidc: changed");
    expect(changed.stdout).toContain(
      'description: "Local development target (npm run dev); nothing trusts its audience." → "Changed',
    );
    expect((await gatepass("diff", newest, newest, ...storage())).code).toBe(0);
    const unknown = await gatepass("diff", "deadbeef", newest, ...storage());
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.stderr).toContain("diff refused: no pushed policy version starts with deadbeef");
    expect((await gatepass("diff", "nothex", newest, ...storage())).code).toBe(2);
    expect((await gatepass("plan", "--days", "0", ...storage())).code).toBe(2);
    expect((await gatepass("plan", "--json", "--markdown", ...storage())).code).toBe(2);
  });
});

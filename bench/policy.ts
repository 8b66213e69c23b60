// `npm run bench policy`: policy evaluation cost as the policy grows: 10, 1 000 and 10 000 rules spread over many projects
// (each size has the same 5 namespace-glob rules; the rest are scoped to one exact project each, the
// common shape). Runs in Node on the same code the Worker runs (V8 in both): each evaluate() is timed
// on its own with process.hrtime, which workerd cannot do (its clock stands still between I/O).
// Also reports the one-off cost of loading a snapshot (what a cold isolate pays).
import { compilePolicy, loadSnapshot } from "../src/policy/compile";
import { evaluate } from "../src/policy/evaluate";
import { buildSnapshot } from "../src/policy/snapshot";
import type { IssuerConfig, RuleSpec, Target, VerifiedIdentity } from "../src/types";

const SIZES = [10, 1_000, 10_000];
const SAMPLES = 200_000;
const GLOB_RULES = 5;
const TARGETS = 5;

const issuer: IssuerConfig = {
  name: "corp-gitlab",
  url: "https://gitlab.example.com",
  kind: "gitlab",
  aliases: [],
  audiences: ["https://gatepass.example.com"],
  algorithms: ["RS256"],
  keys: { source: "discovery" },
  max_token_age_seconds: 3600,
  accept_legacy_ci_job_jwt: false,
};

const targets: Target[] = Array.from({ length: TARGETS }, (_, i) => ({
  name: `target-${i}`,
  type: "oidc",
  audience: `https://service-${i}.example.com`,
  privileged: false,
  signing_alg: "ES256",
  max_lifetime_seconds: 3600,
}));

const projectOf = (i: number) => `group-${i % 100}/sub-${i % 7}/project-${i}`;

function rules(count: number): RuleSpec[] {
  const globs: RuleSpec[] = Array.from({ length: GLOB_RULES }, (_, g) => ({
    name: `glob-${g}`,
    issuer: issuer.name,
    match: { namespace_path: `group-${g}/**`, ref_type: "branch", ref: ["main", "release/*"], pipeline_source: { not: "merge_request_event" } },
    allow: [`target-${g % TARGETS}`],
  }));
  const exact: RuleSpec[] = Array.from({ length: count - GLOB_RULES }, (_, i) => ({
    name: `project-${i}`,
    issuer: issuer.name,
    match: { project_path: projectOf(i), ref_type: "branch", ref: "main", ref_protected: "true", pipeline_source: ["push", "web", "schedule"] },
    allow: [`target-${i % TARGETS}`, `target-${(i + 1) % TARGETS}`],
  }));
  return [...globs, ...exact];
}

function identities(count: number): { identity: VerifiedIdentity; target: string }[] {
  const exactRules = count - GLOB_RULES;
  return Array.from({ length: 1_000 }, (_, k) => {
    const i = (k * 7919) % exactRules;
    const project = projectOf(i);
    return {
      identity: {
        issuer: issuer.name,
        issuerUrl: issuer.url,
        claims: {
          project_path: project,
          project_id: String(100_000 + i),
          namespace_path: project.slice(0, project.lastIndexOf("/")),
          namespace_id: String(i % 100),
          ref: k % 3 === 0 ? "feature/x" : "main", // a third are denied
          ref_type: "branch",
          ref_protected: "true",
          pipeline_source: "push",
        },
        tokenSha256: "",
        issuedAt: 0,
        expiresAt: 0,
        legacy: false,
      },
      target: `target-${(i + (k % 2)) % TARGETS}`,
    };
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

export async function run(): Promise<void> {
  const results: { size: number; p50: number; p99: number; mean: number; loadMs: number; allowed: number }[] = [];
  for (const size of SIZES) {
    const { text } = await buildSnapshot({ issuers: [issuer], targets, rules: rules(size) }, { sourceDigest: "0".repeat(64), createdAt: new Date(0).toISOString() });
    const loadStarted = process.hrtime.bigint();
    const policy = await loadSnapshot(text);
    const loadMs = Number(process.hrtime.bigint() - loadStarted) / 1e6;
    compilePolicy(policy.snapshot); // warm the compile path too (not measured)
    const cases = identities(size);
    let allowed = 0;
    for (let i = 0; i < 20_000; i++) evaluate(policy, cases[i % cases.length]!.identity, cases[i % cases.length]!.target); // JIT warm-up
    const samples = new Float64Array(SAMPLES);
    for (let i = 0; i < SAMPLES; i++) {
      const { identity, target } = cases[i % cases.length]!;
      const started = process.hrtime.bigint();
      const decision = evaluate(policy, identity, target);
      samples[i] = Number(process.hrtime.bigint() - started) / 1_000;
      if (decision.allowed) allowed++;
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
    results.push({ size, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), mean, loadMs, allowed: allowed / SAMPLES });
  }
  const base = results[0]!;
  console.log("policy evaluation (Node, per call, µs; includes ~0.05 µs of timer overhead)");
  console.log("rules     p50      p99      mean     p99 vs 10 rules   allowed   snapshot load");
  for (const r of results) {
    console.log(
      `${String(r.size).padEnd(9)} ${r.p50.toFixed(2).padEnd(8)} ${r.p99.toFixed(2).padEnd(8)} ${r.mean.toFixed(2).padEnd(8)} ${(r.p99 / base.p99).toFixed(2).padEnd(17)} ${(r.allowed * 100).toFixed(0).padStart(3)}%      ${r.loadMs.toFixed(1)} ms`,
    );
  }
  const largest = results[results.length - 1]!;
  console.log(`targets: p99 < 50 µs at 10 000 rules: ${largest.p99 < 50 ? "met" : "MISSED"}; 10 000-rule p99 within 3× of 10-rule p99: ${largest.p99 <= 3 * base.p99 ? "met" : "MISSED"}`);
}

// `npm run bench -- cli`: wall time of each gatepass command as a process (the built CLI, as an
// operator runs it), 5 runs each: minimum and median, and `node -e ''` measured in the same rounds as
// the baseline (a busy machine slows both; the ratio is the comparable figure). The targets are for
// an idle 2-core machine (docs/benchmarks.md).
import { spawnSync } from "node:child_process";
import { exportJWK, generateKeyPair } from "jose";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
// @ts-expect-error: a plain JavaScript module without type declarations
import { buildCli } from "../scripts/build-cli.mjs";
import { copyMigratedState } from "../test/support/wrangler-dev";
import { ISSUER, rulesFor, TARGETS } from "./policy-mixes";
import { median } from "./stats";

const RUNS = 5;
const CLI = path.resolve("cli/gatepass.mjs");

interface Case {
  name: string;
  args: string[];
  /** Idle 2-core target in seconds, when the issue sets one. */
  target?: number;
  /** Exit codes that count as success (explain exits 1 when a target is denied). */
  ok?: number[];
  /** Working directory, when not the checkout. */
  cwd?: string;
}

/** A directory where `gatepass dev token` finds the local issuer key `gatepass dev` writes on its first start. */
async function devTokenDir(at: string): Promise<string> {
  await mkdir(path.join(at, ".wrangler", "gatepass-dev"), { recursive: true });
  const { privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: "bench", alg: "RS256" };
  await writeFile(path.join(at, ".wrangler", "gatepass-dev", "local-gitlab.private.jwk.json"), JSON.stringify(jwk), {
    mode: 0o600,
  });
  return at;
}

/** Seconds one run of `node ...args` takes, start to exit. */
function time(args: string[], cwd?: string): { seconds: number; code: number; stderr: string } {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    ...(cwd ? { cwd } : {}),
  });
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, code: result.status ?? 1, stderr: result.stderr };
}

async function bigPolicyDir(at: string, count: number): Promise<string> {
  await mkdir(at);
  // YAML is a superset of JSON: one rule per line (as bench/policy.ts writes it).
  const yaml = (key: string, items: unknown[]) =>
    `${key}:\n${items.map((item) => `  - ${JSON.stringify(item)}`).join("\n")}\n`;
  const issuer = { name: ISSUER.name, url: ISSUER.url, audiences: ISSUER.audiences };
  const targets = TARGETS.map((t) => ({ name: t.name, type: t.type, audience: (t as { audience: string }).audience }));
  await writeFile(
    path.join(at, "policy.yaml"),
    yaml("issuers", [issuer]) + yaml("targets", targets) + yaml("rules", rulesFor("mixed", count)),
  );
  return at;
}

export async function run(): Promise<void> {
  await buildCli(); // a stale build would be rebuilt by the first run and count in it
  const work = await mkdtemp(path.join(tmpdir(), "gatepass-bench-cli-"));
  try {
    const claims = path.join(work, "claims.json");
    await writeFile(
      claims,
      JSON.stringify({
        iss: "https://gitlab.example.com",
        project_id: "101",
        project_path: "platform/infra",
        namespace_id: "10",
        namespace_path: "platform",
        ref: "main",
        ref_type: "branch",
        ref_protected: "true",
        pipeline_source: "push",
        user_login: "alice",
        job_id: "1",
      }),
    );
    const big = await bigPolicyDir(path.join(work, "big"), 10_000);
    const bigClaims = path.join(work, "big-claims.json");
    await writeFile(
      bigClaims,
      JSON.stringify({
        iss: ISSUER.url,
        project_id: "1",
        project_path: "group-1/project-1",
        namespace_id: "1",
        namespace_path: "group-1",
        ref: "main",
        ref_type: "branch",
        ref_protected: "true",
        pipeline_source: "push",
      }),
    );
    const state = path.join(work, "state");
    await copyMigratedState(state);
    const local = ["--local", "--persist-to", state];
    const cases: Case[] = [
      { name: "gatepass --help", args: ["--help"], target: 0.3 },
      { name: "gatepass --version", args: ["--version"] },
      { name: "policies validate (example policies)", args: ["policies", "validate"], target: 0.6 },
      { name: "policies test (example policies)", args: ["policies", "test"], target: 0.6 },
      {
        name: "policies explain (example policies)",
        args: ["policies", "explain", "--claims", claims],
        target: 0.6,
        ok: [0, 1],
      },
      { name: "policies validate (10 000 rules)", args: ["policies", "validate", "--dir", big], target: 3 },
      {
        name: "policies test (10 000 rules, no test files)",
        args: ["policies", "test", "--dir", big],
        target: 3,
        ok: [0, 1],
      },
      {
        name: "policies explain (10 000 rules)",
        args: ["policies", "explain", "--claims", bigClaims, "--dir", big],
        target: 3,
        ok: [0, 1],
      },
      { name: "dev token", args: ["dev", "token"], target: 0.4, cwd: await devTokenDir(path.join(work, "dev")) },
      {
        name: "policies push --local (example policies)",
        args: ["policies", "push", ...local, "--by", "bench"],
        target: 1.5,
      },
      { name: "policies history --local", args: ["policies", "history", ...local] },
      {
        name: "jwks credential create --local",
        args: ["jwks", "credential", "create", "--issuer", "local-gitlab", ...local, "--by", "bench"],
        target: 1,
      },
      { name: "jwks credential list --local", args: ["jwks", "credential", "list", ...local] },
      { name: "audit query --local", args: ["audit", "query", ...local] },
    ];
    const wanted = process.env.GATEPASS_BENCH_CLI_ONLY; // a substring of case names, to rerun a few
    const chosen = wanted ? cases.filter((c) => c.name.includes(wanted)) : cases;
    const baseline: number[] = [];
    const samples = new Map<string, number[]>(chosen.map((c) => [c.name, []]));
    // Rounds, not case after case: each round runs the baseline and every command once, so a burst of
    // load on this shared machine lands on all of them rather than on one command's five runs.
    for (let round = 0; round < RUNS; round++) {
      baseline.push(time(["-e", ""]).seconds);
      for (const c of chosen) {
        const result = time([CLI, ...c.args], c.cwd);
        if (!(c.ok ?? [0]).includes(result.code))
          throw new Error(`gatepass ${c.args.join(" ")} exited ${result.code}:\n${result.stderr}`);
        samples.get(c.name)!.push(result.seconds);
      }
    }
    const base = median(baseline);
    const s = (x: number) => `${x.toFixed(2)} s`;
    console.log(
      `gatepass CLI as a process, ${RUNS} runs each (built CLI, cli/gatepass.mjs); ratio = median / median of node -e ''`,
    );
    console.log(
      `${"command".padEnd(46)} ${"min".padStart(7)} ${"median".padStart(7)} ${"ratio".padStart(6)}  target (idle)`,
    );
    console.log(
      `${"node -e ''".padEnd(46)} ${s(Math.min(...baseline)).padStart(7)} ${s(base).padStart(7)} ${"1.0×".padStart(6)}`,
    );
    for (const c of chosen) {
      const values = samples.get(c.name)!;
      console.log(
        `${c.name.padEnd(46)} ${s(Math.min(...values)).padStart(7)} ${s(median(values)).padStart(7)} ${`${(median(values) / base).toFixed(1)}×`.padStart(6)}  ${c.target ? `≤ ${c.target} s` : ""}`,
      );
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// `npm run bench -- policy`: what policy costs as it grows, for three mixes of rules (bench/policy-mixes.ts:
// exact projects, namespace globs, and 60/30/10 exact / globs / unscoped).
//   1. workerd, warm: evaluate() and whoami's policy work (grants + a ?target= explanation) at 10,
//      1 000 and 10 000 rules. The isolate's clock moves only at I/O, so each of 200 jobs is repeated
//      for about 20 ms between two I/O boundaries (bench/policy-worker.ts), three times, and the lowest
//      is kept (the host is shared): the figures are per-job means, and p99 is over jobs (it does not
//      see one call's GC pause; the Node table below does).
//   2. workerd, cold: a fresh workerd per measurement (nothing compiled, nothing loaded), its first
//      request's policy work: load the snapshot KV holds and decide one job, at 10, 1 000, 10 000 and
//      50 000 rules (mixed), against a format 1 snapshot (what push wrote before) at 10 000.
//   3. Node, per call (a complement: the same code in V8, each call timed alone with hrtime).
//   4. `gatepass policies push`, `history` and `rollback` of a 50 000-rule policy, end to end through
//      wrangler against local state.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { Unstable_DevWorker } from "wrangler";
import { wrangler } from "../cli/wrangler";
import { compilePolicy } from "../src/policy/compile-policy";
import { evaluate, explainTarget, grantsFor } from "../src/policy/evaluate";
import { normalizePolicy } from "../src/policy/policy-schema";
import { buildSnapshot } from "../src/policy/snapshot-format";
import { ISSUER, jobsFor, MIXES, rulesFor, TARGETS } from "./policy-mixes";
import { startBenchWorker } from "./bench-worker";
import { median } from "./stats";

const WARM_SIZES = [10, 1_000, 10_000];
const COLD_SIZES = [10, 1_000, 10_000, 50_000];
const COLD_ROUNDS = 3;
const JOBS = 200;
const BATCH_MS = 20;
const NODE_SAMPLES = 100_000;
const E2E_RULES = 50_000;

const percentile = (values: readonly number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
};
const us = (value: number) => value.toFixed(value < 10 ? 2 : 1);

const startBench = (persistTo?: string) => startBenchWorker("bench/policy-worker.ts", persistTo);

async function getJson<T>(worker: Unstable_DevWorker, pathAndQuery: string, init?: RequestInit): Promise<T> {
  const res = await worker.fetch(pathAndQuery, init as never);
  const text = await res.text();
  if (!res.ok) throw new Error(`${pathAndQuery}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

async function warmInWorkerd(): Promise<void> {
  console.log(
    `workerd, warm: µs per call, a per-job mean over ${JOBS} jobs (each repeated ~${BATCH_MS} ms between I/O, lowest of 3 batches); p99 and max over jobs`,
  );
  console.log(
    "mix        rules   evaluate p50  p99     max     p99 vs 10 rules | whoami p50  p99     max     p99 vs 10 rules",
  );
  for (const mix of MIXES) {
    // A workerd per mix: one holding every mix's policies at once stopped answering mid-run (twice,
    // at the first request of a new mix), and the mixes share nothing.
    const worker = await startBench();
    try {
      const base: Record<string, number> = {};
      for (const count of WARM_SIZES) {
        const cells: string[] = [];
        for (const op of ["evaluate", "whoami"]) {
          const { perJobUs } = await getJson<{ perJobUs: number[] }>(
            worker,
            `/warm?mix=${mix}&count=${count}&op=${op}&jobs=${JOBS}&ms=${BATCH_MS}`,
          );
          const p99 = percentile(perJobUs, 0.99);
          if (count === WARM_SIZES[0]) base[op] = p99;
          cells.push(
            `${us(median(perJobUs)).padStart(8)}  ${us(p99).padStart(6)}  ${us(Math.max(...perJobUs)).padStart(6)}  ${(p99 / base[op]!).toFixed(2).padStart(6)}×`,
          );
        }
        console.log(`${mix.padEnd(9)}  ${String(count).padStart(6)}  ${cells[0]}          | ${cells[1]}`);
      }
    } finally {
      await worker.stop();
    }
  }
}

async function coldInWorkerd(): Promise<void> {
  console.log(
    `\nworkerd, cold: the first request's policy work in a fresh workerd (load the snapshot from KV, decide one job), ms; ${COLD_ROUNDS} fresh starts each`,
  );
  console.log("snapshot                     stored   CPU (KV values in memory)   with local KV reads");
  const cases: { label: string; count: number; format?: 1 }[] = [
    ...COLD_SIZES.map((count) => ({ label: `mixed, ${count} rules`, count })),
    { label: "mixed, 10000, format 1", count: 10_000, format: 1 },
  ];
  for (const { label, count, format } of cases) {
    const state = await mkdtemp(path.join(tmpdir(), "gatepass-bench-policy-"));
    try {
      const setup = await startBench(state);
      const { bytes } = await getJson<{ bytes: number }>(
        setup,
        `/setup?mix=mixed&count=${count}${format ? "&format=1" : ""}`,
        { method: "POST" },
      );
      await setup.stop();
      const samples: Record<"memory" | "kv", number[]> = { memory: [], kv: [] };
      for (let round = 0; round < COLD_ROUNDS; round++) {
        for (const source of ["memory", "kv"] as const) {
          const worker = await startBench(state);
          try {
            const result = await getJson<{ ms: number; rules: number }>(worker, `/cold?source=${source}&job=1`);
            if (result.rules !== count) throw new Error(`loaded ${result.rules} rules, expected ${count}`);
            samples[source].push(result.ms);
          } finally {
            await worker.stop();
          }
        }
      }
      const show = (values: number[]) =>
        `${values.map((v) => String(v).padStart(4)).join(" ")} (median ${median(values)})`;
      console.log(
        `${label.padEnd(26)}  ${`${(bytes / 1024 / 1024).toFixed(2)} MiB`.padStart(9)}   ${show(samples.memory).padEnd(26)}  ${show(samples.kv)}`,
      );
    } finally {
      await rm(state, { recursive: true, force: true });
    }
  }
}

async function perCallInNode(): Promise<void> {
  console.log(
    `\nNode, per call (a complement: the same code in V8; each call timed alone; ${NODE_SAMPLES} calls over ${JOBS} jobs), µs`,
  );
  console.log("mix        rules   evaluate p50  p99     p99 vs 10 rules | whoami p50  p99     p99 vs 10 rules");
  for (const mix of MIXES) {
    const base: Record<string, number> = {};
    for (const count of WARM_SIZES) {
      const { policy: parts, problems } = normalizePolicy(
        [{ name: "bench", value: { issuers: [ISSUER], targets: TARGETS, rules: rulesFor(mix, count) } }],
        "snapshot",
      );
      if (problems.length > 0) throw new Error(problems[0]!.message);
      const policy = compilePolicy(
        (await buildSnapshot(parts, { sourceDigest: "0".repeat(64), createdAt: new Date(0).toISOString() })).snapshot,
      );
      const jobs = jobsFor(count, JOBS);
      const ops = {
        evaluate: (job: (typeof jobs)[number]) => evaluate(policy, job.identity, job.target),
        whoami: (job: (typeof jobs)[number]) => {
          grantsFor(policy, job.identity);
          explainTarget(policy, job.identity, job.target, "candidates");
        },
      };
      const cells: string[] = [];
      for (const [name, op] of Object.entries(ops)) {
        for (let i = 0; i < 20_000; i++) op(jobs[i % jobs.length]!); // compile the rules, warm the JIT
        const samples = new Float64Array(NODE_SAMPLES);
        for (let i = 0; i < NODE_SAMPLES; i++) {
          const job = jobs[i % jobs.length]!;
          const started = process.hrtime.bigint();
          op(job);
          samples[i] = Number(process.hrtime.bigint() - started) / 1_000;
        }
        const values = [...samples];
        const p99 = percentile(values, 0.99);
        if (count === WARM_SIZES[0]) base[name] = p99;
        cells.push(
          `${us(percentile(values, 0.5)).padStart(8)}  ${us(p99).padStart(6)}  ${(p99 / base[name]!).toFixed(2).padStart(6)}×`,
        );
      }
      console.log(`${mix.padEnd(9)}  ${String(count).padStart(6)}  ${cells[0]}          | ${cells[1]}`);
    }
  }
}

async function pushEndToEnd(): Promise<void> {
  console.log(
    `\ngatepass policies push / history / rollback of ${E2E_RULES} rules (mixed), local wrangler state, wall time`,
  );
  const work = await mkdtemp(path.join(tmpdir(), "gatepass-bench-push-"));
  const exec = promisify(execFile);
  const persist = path.join(work, "state");
  const storage = ["--local", "--persist-to", persist];
  const cli = async (...args: string[]) => {
    const started = Date.now();
    const { stdout } = await exec(process.execPath, [path.resolve("cli/gatepass.mjs"), "policies", ...args], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return { seconds: (Date.now() - started) / 1000, stdout };
  };
  try {
    await wrangler(["d1", "migrations", "apply", "DB", ...storage]);
    const dir = async (name: string, count: number) => {
      const at = path.join(work, name);
      await mkdir(at);
      // YAML is a superset of JSON: one rule per line.
      const yaml = (key: string, items: unknown[]) =>
        `${key}:\n${items.map((item) => `  - ${JSON.stringify(item)}`).join("\n")}\n`;
      // Issuers and targets as policy files write them (snapshots carry every default and *_seconds fields).
      const issuer = { name: ISSUER.name, url: ISSUER.url, audiences: ISSUER.audiences };
      const targets = TARGETS.map((t) => ({
        name: t.name,
        type: t.type,
        audience: (t as { audience: string }).audience,
      }));
      await writeFile(
        path.join(at, "policy.yaml"),
        yaml("issuers", [issuer]) + yaml("targets", targets) + yaml("rules", rulesFor("mixed", count)),
      );
      return at;
    };
    const big = await cli("push", "--dir", await dir("big", E2E_RULES), ...storage, "--by", "bench");
    const version = /pushed policy version ([0-9a-f]{64})/.exec(big.stdout)![1]!;
    const small = await cli("push", "--dir", await dir("small", 10), ...storage, "--by", "bench");
    const history = await cli("history", ...storage);
    const rollback = await cli("rollback", version, ...storage);
    console.log(
      `  push ${E2E_RULES} rules: ${big.seconds.toFixed(1)} s; push 10 rules: ${small.seconds.toFixed(1)} s; history: ${history.seconds.toFixed(1)} s; rollback to the ${E2E_RULES}-rule version: ${rollback.seconds.toFixed(1)} s`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  await warmInWorkerd();
  await coldInWorkerd();
  await perCallInNode();
  await pushEndToEnd();
}

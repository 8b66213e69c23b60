// `npm run bench -- refusal-cost`: the CPU the Worker's workerd spends per request on the cheapest
// answers gatepass gives (GET /healthz, and a junk token's refusal) against the bare Worker's trivial
// 401 (bench/bare-worker.ts refusing the same junk token), in the same run. Both Workers run under
// wrangler's dev server with the DevTools inspector off, and the load goes straight to each Worker's
// workerd, past the dev proxy (bench/isolate.ts). What is counted is that workerd's CPU time as the
// kernel accounts it (schedstat), not wall clock: waiting for a core on the shared machine does not
// count. Each round sends RATE requests a second for SECONDS seconds and then lets deferred work
// (gatepass's audit insert, in waitUntil) finish, so it lands in the round that caused it. Rounds
// interleave the three loads; the figures are medians over ROUNDS rounds, and the section repeats the
// whole thing RUNS times on fresh dev servers and reports each run's ratios and the worst.
import autocannon from "autocannon";
import path from "node:path";
import { cpuNanoseconds, isolateOf } from "./isolate";
import { prepareOidcBench } from "./oidc-setup";
import { median } from "./stats";
import { startWranglerDev } from "../test/support/wrangler-dev";

const RUNS = Number(process.env.REFUSAL_COST_RUNS ?? 3);
const ROUNDS = 5;
const SECONDS = 4;
const RATE = Number(process.env.REFUSAL_COST_RATE ?? 400); // req/s
const CONNECTIONS = Number(process.env.REFUSAL_COST_CONNECTIONS ?? 4);
/** Not a JWT: refused before any key or signature is looked at (gatepass: token_malformed). */
const JUNK_TOKEN = "junk-token-for-the-refusal-cost-bench";

type Load = {
  name: "bare 401" | "gatepass /healthz" | "gatepass junk";
  url: string;
  method: "GET" | "POST";
  status: number;
  pid: number;
};

async function perRequestMicroseconds(load: Load): Promise<number> {
  const before = cpuNanoseconds(load.pid);
  const result = await autocannon({
    url: load.url,
    method: load.method,
    connections: CONNECTIONS,
    duration: SECONDS,
    overallRate: RATE,
    headers: load.method === "POST" ? { authorization: `Bearer ${JUNK_TOKEN}` } : {},
  });
  await new Promise((resolve) => setTimeout(resolve, 500)); // deferred work lands in this round
  const after = cpuNanoseconds(load.pid);
  const answered = result.requests.total;
  const expected = load.status === 200 ? result["2xx"] : result["4xx"];
  if (result.errors > 0 || expected !== answered)
    throw new Error(
      `${load.name}: ${answered} answered, ${expected} with HTTP ${load.status}, ${result.errors} errors`,
    );
  return (after - before) / answered / 1_000;
}

async function oneRun(bench: Awaited<ReturnType<typeof prepareOidcBench>>): Promise<Map<Load["name"], number>> {
  const bare = await startWranglerDev({
    config: path.resolve("bench/bare.wrangler.toml"),
    vars: { CI_ISSUER: bench.ciIssuer },
    secrets: bench.bareSecrets,
    inspector: false,
    quiet: true,
  });
  const gatepass = await startWranglerDev({
    vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development" }),
    ...bench.gatepass,
    inspector: false,
    quiet: true,
  }).catch(async (err) => {
    await bare.stop();
    throw err;
  });
  try {
    const [bareIsolate, gatepassIsolate] = [await isolateOf(bare), await isolateOf(gatepass)];
    const loads: Load[] = [
      { name: "bare 401", url: `${bareIsolate.url}/exchange`, method: "POST", status: 401, pid: bareIsolate.pid },
      {
        name: "gatepass /healthz",
        url: `${gatepassIsolate.url}/healthz`,
        method: "GET",
        status: 200,
        pid: gatepassIsolate.pid,
      },
      {
        name: "gatepass junk",
        url: `${gatepassIsolate.url}/v1/credentials/oidc-rp`,
        method: "POST",
        status: 401,
        pid: gatepassIsolate.pid,
      },
    ];
    for (const load of loads) await perRequestMicroseconds(load); // warm-up: keys, policy, JIT
    const samples = new Map(loads.map((load) => [load.name, [] as number[]]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const load of loads) samples.get(load.name)!.push(await perRequestMicroseconds(load));
    }
    return new Map([...samples].map(([name, values]) => [name, median(values)]));
  } finally {
    await gatepass.stop();
    await bare.stop();
  }
}

export async function run(): Promise<void> {
  const bench = await prepareOidcBench(1);
  try {
    console.log(
      `refusal-cost: the Worker's workerd CPU per request (schedstat), straight at workerd, inspector off, ${RUNS} runs × ${ROUNDS} interleaved rounds × ${SECONDS} s at ${RATE} req/s, medians, µs`,
    );
    const ratios: { healthz: number; junk: number }[] = [];
    for (let i = 0; i < RUNS; i++) {
      const us = await oneRun(bench);
      const bare = us.get("bare 401")!;
      const healthz = us.get("gatepass /healthz")! / bare;
      const junk = us.get("gatepass junk")! / bare;
      ratios.push({ healthz, junk });
      console.log(
        `  run ${i + 1}: ${[...us].map(([name, v]) => `${name} ${v.toFixed(0)}`).join(", ")}; /healthz ${healthz.toFixed(2)}× bare, junk refusal ${junk.toFixed(2)}× bare`,
      );
    }
    const worst = (key: "healthz" | "junk") => Math.max(...ratios.map((r) => r[key])).toFixed(2);
    console.log(
      `  worst of ${RUNS}: /healthz ${worst("healthz")}× bare (target ≤ 1.2×), junk refusal ${worst("junk")}× bare (target ≤ 1.5×)`,
    );
  } finally {
    await bench.close();
  }
}

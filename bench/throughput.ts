// `npm run bench -- throughput`: exchange throughput and latency for an `oidc` target against
// gatepass under `wrangler dev`, next to a bare Worker doing only the same verify + sign
// (bench/bare-worker.ts), in the same run. Target: gatepass ≥ 50% of the bare Worker's throughput.
//
// Two setups, each with its own Workers: the `wrangler dev` CLI (the target's setup), and wrangler's
// dev server with the DevTools inspector off. The CLI always attaches an inspector proxy that ships
// every console call to wrangler's Node process, so there every log line costs far more than it
// does in production; the second setup, `bare+log` (the bare Worker logging one line per request)
// and `gp-no-log` (gatepass with its request log line discarded) show that tax apart from the rest.
import type autocannon from "autocannon";
import { wrangler } from "../cli/wrangler";
import { CONNECTIONS, load, startContenders, type Contender } from "./contenders";
import { prepareOidcBench } from "./oidc-setup";
import { median } from "./stats";

const SECONDS = 10;
const ROUNDS = 5;

const line = (name: string, r: autocannon.Result) =>
  `    ${name.padEnd(10)} ${r.requests.average.toFixed(0).padStart(6)} req/s   p50 ${String(r.latency.p50).padStart(4)} ms   p99 ${String(r.latency.p99).padStart(4)} ms   non-2xx ${r.non2xx}  errors ${r.errors}`;

/** Per contender: median req/s and latencies over the rounds, and every request answered (warm-up included). */
interface Measured {
  rate: Map<string, number>;
  p50: Map<string, number>;
  p99: Map<string, number>;
  answered: Map<string, number>;
}

export async function run(): Promise<void> {
  const bench = await prepareOidcBench(2_000);

  let stopContenders = async () => {};
  try {
    console.log(
      `throughput: oidc target (verify RS256 → policy → mint ES256), ${CONNECTIONS} connections, ${ROUNDS} alternating rounds × ${SECONDS} s, medians`,
    );
    for (const inspector of [true, false]) {
      const { contenders, stop } = await startContenders(bench, inspector);
      stopContenders = stop;
      console.log(
        inspector
          ? "\n  `wrangler dev` (the CLI: DevTools inspector attached)"
          : "\n  wrangler's dev server with the DevTools inspector off (unstable_startWorker)",
      );
      const m = await measure(bench.tokens, contenders);
      const gatepassServer = contenders.find((c) => c.name === "gatepass")!.server;
      const [bareRate, bareLoggingRate, gatepassRate] = [
        m.rate.get("bare")!,
        m.rate.get("bare+log")!,
        m.rate.get("gatepass")!,
      ];
      console.log(
        `  medians: bare ${bareRate.toFixed(0)} req/s, bare+log ${bareLoggingRate.toFixed(0)} req/s, gatepass ${gatepassRate.toFixed(0)} req/s (p50 ${m.p50.get("gatepass")} ms, p99 ${m.p99.get("gatepass")} ms)`,
      );
      console.log(
        `  gatepass = ${((gatepassRate / bareLoggingRate) * 100).toFixed(0)}% of the bare Worker that also logs one line per request`,
      );
      console.log(
        `  gatepass without its request log line (gp-no-log, bench/gatepass-without-log.ts) = ${((m.rate.get("gp-no-log")! / bareRate) * 100).toFixed(0)}% of the bare Worker`,
      );
      // Batched audit must keep up: every request answered has its event in D1.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const [{ results }] = JSON.parse(
        await wrangler([
          "d1",
          "execute",
          "DB",
          "--json",
          "--local",
          "--persist-to",
          gatepassServer.persistTo,
          "--command",
          "SELECT count(*) AS n FROM audit_events",
        ]),
      ) as [{ results: [{ n: number }] }];
      console.log(`  audit: ${results[0].n} events in D1 for ${m.answered.get("gatepass")} requests answered`);
      const share = gatepassRate / bareRate;
      console.log(
        `  gatepass = ${(share * 100).toFixed(0)}% of the bare Worker${inspector ? ` (target ≥ 50%) ${share >= 0.5 ? "OK" : "BELOW TARGET"}` : ""}`,
      );
      await stop(); // an idle setup must not share the CPU with the next one
    }
  } finally {
    await stopContenders();
    await bench.close();
  }
}

/**
 * Warms every contender up, then loads them in turn for ROUNDS rounds (on this shared machine one
 * round alone swings by ±10%).
 */
async function measure(tokens: string[], contenders: Contender[]): Promise<Measured> {
  const answered = new Map<string, number>();
  const results = new Map<string, autocannon.Result[]>(contenders.map((c) => [c.name, []]));
  const record = (name: string, result: autocannon.Result) =>
    answered.set(name, (answered.get(name) ?? 0) + result.requests.total);
  for (const { name, url } of contenders) record(name, await load(url, tokens, { seconds: SECONDS })); // warm-up: keys, policy, JIT
  for (let round = 1; round <= ROUNDS; round++) {
    console.log(`  round ${round}`);
    for (const { name, url } of contenders) {
      const result = await load(url, tokens, { seconds: SECONDS });
      record(name, result);
      results.get(name)!.push(result);
      console.log(line(name, result));
    }
  }
  const medianOf = (pick: (r: autocannon.Result) => number) =>
    new Map([...results].map(([name, rs]) => [name, median(rs.map(pick))]));
  return {
    rate: medianOf((r) => r.requests.average),
    p50: medianOf((r) => r.latency.p50),
    p99: medianOf((r) => r.latency.p99),
    answered,
  };
}

// Warm token verification cost in workerd, against a bare WebCrypto RS256 verify measured the same
// way in the same run. The Worker runs N iterations per request (its own clock stands still while it
// runs); Node times requests from outside and subtracts the cost of an empty request (n=0).
import path from "node:path";
import { unstable_dev } from "wrangler";
import { median } from "./stats";

const ITERATIONS = 2_000;
const ROUNDS = 15;

export async function run(): Promise<void> {
  const worker = await unstable_dev(path.resolve("bench/verify-worker.ts"), {
    config: path.resolve("wrangler.toml"),
    ip: "127.0.0.1",
    local: true,
    persist: false,
    logLevel: "none",
    experimental: { disableExperimentalWarning: true },
  });
  try {
    const call = async (pathAndQuery: string): Promise<number> => {
      const started = process.hrtime.bigint();
      const res = await worker.fetch(pathAndQuery);
      await res.text();
      if (!res.ok) throw new Error(`${pathAndQuery}: HTTP ${res.status}`);
      return Number(process.hrtime.bigint() - started) / 1_000; // µs
    };
    await call("/setup");
    // Warm-up: JIT, imported keys, connection.
    for (let i = 0; i < 3; i++) {
      await call(`/verify?n=${ITERATIONS}`);
      await call(`/webcrypto?n=${ITERATIONS}`);
    }
    const samples = { empty: [] as number[], verify: [] as number[], webcrypto: [] as number[] };
    // Interleaved so drift (other load on the machine) hits both sides alike.
    for (let round = 0; round < ROUNDS; round++) {
      samples.empty.push(await call("/verify?n=0"));
      samples.verify.push(await call(`/verify?n=${ITERATIONS}`));
      samples.webcrypto.push(await call(`/webcrypto?n=${ITERATIONS}`));
    }
    const empty = median(samples.empty);
    const perOp = (values: number[]) => values.map((v) => (v - empty) / ITERATIONS);
    const verify = perOp(samples.verify);
    const webcrypto = perOp(samples.webcrypto);
    const ratio = median(verify) / median(webcrypto);
    console.log(`verify (workerd, ${ROUNDS} rounds × ${ITERATIONS} iterations, µs per operation)`);
    console.log(`  warm Verifier.verify (RS256)   median ${fmt(median(verify))}  min ${fmt(Math.min(...verify))}  max ${fmt(Math.max(...verify))}`);
    console.log(`  bare crypto.subtle.verify      median ${fmt(median(webcrypto))}  min ${fmt(Math.min(...webcrypto))}  max ${fmt(Math.max(...webcrypto))}`);
    console.log(`  ratio ${ratio.toFixed(2)}× (target ≤ 2×) ${ratio <= 2 ? "OK" : "OVER TARGET"}`);
  } finally {
    await worker.stop();
  }
}

const fmt = (us: number) => `${us.toFixed(1).padStart(6)} µs`;

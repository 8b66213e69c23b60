// Warm token verification cost in workerd, against a bare WebCrypto RS256 verify measured the same
// way in the same run; and the cost of one minted token's signature, ES256 and RS256. The Worker runs N iterations per request (its own clock stands still while it
// runs); Node times requests from outside and subtracts the cost of an empty request (n=0).
import { startBenchWorker, timedGet } from "./bench-worker";
import { median } from "./stats";

const ITERATIONS = 2_000;
const ROUNDS = 15;

export async function run(): Promise<void> {
  const worker = await startBenchWorker("bench/verify-worker.ts");
  try {
    const call = timedGet(worker);
    await call("/setup");
    // Each measure: its path and how many operations one request runs (RS256 signing is slow).
    const measures = {
      verify: { path: "/verify?", n: ITERATIONS },
      webcrypto: { path: "/webcrypto?", n: ITERATIONS },
      signES256: { path: "/sign?alg=ES256&", n: ITERATIONS },
      signRS256: { path: "/sign?alg=RS256&", n: ITERATIONS / 10 },
    };
    const names = Object.keys(measures) as (keyof typeof measures)[];
    // Warm-up: JIT, imported keys, connection.
    for (let i = 0; i < 3; i++) for (const name of names) await call(`${measures[name].path}n=${measures[name].n}`);
    const empty: number[] = [];
    const samples = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<
      keyof typeof measures,
      number[]
    >;
    // Interleaved so drift (other load on the machine) hits every measure alike.
    for (let round = 0; round < ROUNDS; round++) {
      empty.push(await call("/verify?n=0"));
      for (const name of names) samples[name].push(await call(`${measures[name].path}n=${measures[name].n}`));
    }
    const perOp = (name: keyof typeof measures) => samples[name].map((v) => (v - median(empty)) / measures[name].n);
    const line = (label: string, values: number[]) =>
      console.log(
        `  ${label.padEnd(32)} median ${fmt(median(values))}  min ${fmt(Math.min(...values))}  max ${fmt(Math.max(...values))}`,
      );
    const [verify, webcrypto] = [perOp("verify"), perOp("webcrypto")];
    const ratio = median(verify) / median(webcrypto);
    console.log(`verify (workerd, ${ROUNDS} rounds × ${ITERATIONS} iterations, µs per operation)`);
    line("warm Verifier.verify (RS256)", verify);
    line("bare crypto.subtle.verify", webcrypto);
    console.log(`  ratio ${ratio.toFixed(2)}× (target ≤ 2×) ${ratio <= 2 ? "OK" : "OVER TARGET"}`);
    console.log(`minting (the same rounds; signJwt over a GitLab-sized claim set)`);
    line("ES256 signature", perOp("signES256"));
    line(`RS256 signature (${measures.signRS256.n} per round)`, perOp("signRS256"));
  } finally {
    await worker.stop();
  }
}

const fmt = (us: number) => `${us.toFixed(1).padStart(6)} µs`;

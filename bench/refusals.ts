// `npm run bench -- refusals`: what the Verifier spends on a refused token, by reason, in local workerd.
// Until a signature verifies, the answer must not tell whether the token's issuer is configured: an
// unknown issuer must not be refused measurably faster than a configured issuer's forged token. The
// Worker runs N refusals per request (its own clock stands still while it runs); Node times 15
// interleaved rounds from outside and subtracts the cost of an empty request.
import { startBenchWorker, timedGet } from "./bench-worker";
import { median } from "./stats";

const ITERATIONS = 2_000;
const ROUNDS = 15;
const KINDS = [
  "unknown_issuer",
  "bad_signature",
  "unknown_kid",
  "pinned_kid",
  "unknown_issuer_es256",
  "algorithm_not_allowed",
] as const;

export async function run(): Promise<void> {
  const worker = await startBenchWorker("bench/refusals-worker.ts");
  try {
    const call = timedGet(worker);
    const setup = await worker.fetch("/setup");
    console.log(
      `refusals: the code each token gets from Verifier.verify\n${(await setup.text()).replace(/^/gm, "  ")}`,
    );
    const paths = {
      valid: "/verify?",
      ...Object.fromEntries(KINDS.map((kind) => [kind, `/refuse?kind=${kind}&`])),
    } as Record<string, string>;
    const names = Object.keys(paths);
    for (let i = 0; i < 3; i++) for (const name of names) await call(`${paths[name]}n=${ITERATIONS}`); // warm-up
    const empty: number[] = [];
    const samples = Object.fromEntries(names.map((name) => [name, [] as number[]]));
    for (let round = 0; round < ROUNDS; round++) {
      empty.push(await call("/verify?n=0"));
      for (const name of names) samples[name]!.push(await call(`${paths[name]}n=${ITERATIONS}`));
    }
    const perOp = (name: string) => samples[name]!.map((v) => (v - median(empty)) / ITERATIONS);
    console.log(`refusal cost (workerd, ${ROUNDS} rounds × ${ITERATIONS} verifications, µs per verification)`);
    for (const name of names) {
      const values = perOp(name);
      console.log(
        `  ${name.padEnd(24)} median ${fmt(median(values))}  min ${fmt(Math.min(...values))}  max ${fmt(Math.max(...values))}`,
      );
    }
    const ratio = (a: string, b: string) => (median(perOp(a)) / median(perOp(b))).toFixed(2);
    console.log(
      `  RS256 header: unknown issuer / configured issuer's bad signature ${ratio("unknown_issuer", "bad_signature")}×, / unknown kid ${ratio("unknown_issuer", "unknown_kid")}×, / pinned kid ${ratio("unknown_issuer", "pinned_kid")}×`,
    );
    console.log(
      `  ES256 header: unknown issuer / configured RS256-only issuer ${ratio("unknown_issuer_es256", "algorithm_not_allowed")}×`,
    );
  } finally {
    await worker.stop();
  }
}

const fmt = (us: number) => `${us.toFixed(1).padStart(6)} µs`;

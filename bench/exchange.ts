// `npm run bench -- exchange`: what one `oidc` exchange costs inside the isolate, gatepass against the
// bare Worker (bench/bare-worker.ts) in the same run. A bench Worker (bench/exchange-worker.ts) runs
// N exchanges per request through each one's own fetch handler, with no HTTP, dev proxy or DevTools
// inspector between them; Node times 15 interleaved rounds from outside and subtracts an empty
// request. It is the isolate's CPU per exchange without what `wrangler dev`'s proxy and inspector add
// (see the throughput section), and the figure to watch when changing the hot path.
import { prepareOidcBench } from "./oidc-setup";
import { median } from "./stats";
import { startWranglerDev } from "../test/support/wrangler-dev";

const ITERATIONS = 500;
const ROUNDS = 15;
/**
 * gatepass writes its audit events after the response (group commit, in waitUntil); the pause lets
 * that finish outside every timed request rather than land in whichever comes next. It is left out of
 * gatepass's figure: most of it is local D1's SQLite, which runs in this workerd but not in a deployed
 * Worker.
 */
const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

export async function run(): Promise<void> {
  const bench = await prepareOidcBench(2_000);
  const worker = await startWranglerDev({
    inspector: false,
    quiet: true,
    script: "bench/exchange-worker.ts",
    vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development", CI_ISSUER: bench.ciIssuer }),
    ...bench.gatepass,
    secrets: { ...bench.gatepass.secrets, ...bench.bareSecrets },
  });
  try {
    const setup = await fetch(`${worker.url}/setup`, { method: "POST", body: JSON.stringify(bench.tokens) });
    if (!setup.ok) throw new Error(`setup: HTTP ${setup.status}`);
    const call = async (pathAndQuery: string): Promise<number> => {
      const started = process.hrtime.bigint();
      const res = await fetch(`${worker.url}${pathAndQuery}`);
      const body = await res.text();
      if (!res.ok) throw new Error(`${pathAndQuery}: HTTP ${res.status}: ${body}`);
      return Number(process.hrtime.bigint() - started) / 1_000; // µs
    };
    const contenders = {
      bare: `/bare?n=${ITERATIONS}`,
      "bare+log": `/bare?n=${ITERATIONS}&log=on`,
      gatepass: `/gatepass?n=${ITERATIONS}`,
      "gp-no-log": `/gatepass?n=${ITERATIONS}&log=off`,
      // Refusals of hostile parameter bodies (3 000 form fields; 32 KiB of nested JSON), against an exchange.
      "form-3000": `/hostile?kind=form&n=${ITERATIONS}`,
      "json-32k": `/hostile?kind=json&n=${ITERATIONS}`,
    };
    // Warm-up: keys fetched and imported, policy loaded, JIT.
    for (let i = 0; i < 3; i++) for (const path of Object.values(contenders)) await call(path).then(settle);
    const empty: number[] = [];
    const samples = new Map(Object.keys(contenders).map((name) => [name, [] as number[]]));
    // Interleaved so drift (other load on the machine) hits every contender alike.
    for (let round = 0; round < ROUNDS; round++) {
      empty.push(await call("/bare?n=0"));
      for (const [name, path] of Object.entries(contenders)) {
        samples.get(name)!.push(await call(path));
        await settle();
      }
    }
    const perExchange = new Map(
      [...samples].map(([name, values]) => [name, median(values.map((v) => (v - median(empty)) / ITERATIONS))]),
    );
    const bare = perExchange.get("bare")!;
    console.log(
      `exchange cost in workerd (oidc target, ${ROUNDS} rounds × ${ITERATIONS} exchanges, medians, µs per exchange)`,
    );
    const exchange = perExchange.get("gatepass")!;
    for (const [name, us] of perExchange) {
      const hostile = name === "form-3000" || name === "json-32k";
      const versus =
        name === "bare"
          ? ""
          : hostile
            ? `   ${(us / exchange).toFixed(2)}× a gatepass exchange`
            : `   bare / ${name} = ${((bare / us) * 100).toFixed(0)}%`;
      console.log(`  ${name.padEnd(10)} ${us.toFixed(1).padStart(6)} µs${versus}`);
    }
  } finally {
    await worker.stop();
    await bench.close();
  }
}

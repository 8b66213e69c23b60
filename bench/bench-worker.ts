// A bench Worker in local workerd (wrangler's unstable_dev), and a timer for its requests: the setup
// the verify, refusals and policy benches share.
import path from "node:path";
import { unstable_dev, type Unstable_DevWorker } from "wrangler";

/** Starts `script` with wrangler.toml's bindings, on loopback, quiet; persisted to `persistTo` if given. */
export function startBenchWorker(script: string, persistTo?: string): Promise<Unstable_DevWorker> {
  return unstable_dev(path.resolve(script), {
    config: path.resolve("wrangler.toml"),
    ip: "127.0.0.1",
    local: true,
    ...(persistTo ? { persist: true, persistTo } : { persist: false }),
    logLevel: "none",
    experimental: { disableExperimentalWarning: true, testScheduled: false },
  });
}

/** A GET of `pathAndQuery` on the worker, timed from outside: µs until its whole body arrived; non-2xx throws. */
export function timedGet(worker: Unstable_DevWorker): (pathAndQuery: string) => Promise<number> {
  return async (pathAndQuery) => {
    const started = process.hrtime.bigint();
    const res = await worker.fetch(pathAndQuery);
    await res.text();
    if (!res.ok) throw new Error(`${pathAndQuery}: HTTP ${res.status}`);
    return Number(process.hrtime.bigint() - started) / 1_000;
  };
}

// The four Workers the `throughput` and `cpu` sections load with the same `oidc` exchange, each under
// its own wrangler dev server:
//   bare       bench/bare-worker.ts: verify + sign and nothing else
//   bare+log   the same, logging one line per request
//   gatepass   src/index.ts
//   gp-no-log  gatepass with its request log line discarded (bench/gatepass-without-log.ts)
import autocannon from "autocannon";
import path from "node:path";
import type { OidcBench } from "./oidc-setup";
import { startWranglerDev, type WranglerDev } from "../test/support/wrangler-dev";

export const CONNECTIONS = 50;

export interface Contender {
  name: "bare" | "bare+log" | "gatepass" | "gp-no-log";
  /** Where a CI token is exchanged (POST with `Authorization: Bearer`). */
  url: string;
  server: WranglerDev;
}

/** inspector false: wrangler's dev server with the DevTools inspector off instead of the CLI. */
export async function startContenders(
  bench: OidcBench,
  inspector: boolean,
): Promise<{ contenders: Contender[]; stop(): Promise<void> }> {
  const servers: WranglerDev[] = [];
  const stop = async () => {
    for (const server of servers.splice(0)) await server.stop();
  };
  const start = async (options: Parameters<typeof startWranglerDev>[0]) => {
    const server = await startWranglerDev({ ...options, inspector, quiet: true });
    servers.push(server);
    return server;
  };
  const bareWorker = (vars: Record<string, string>) =>
    start({
      config: path.resolve("bench/bare.wrangler.toml"),
      vars: { CI_ISSUER: bench.ciIssuer, ...vars },
      secrets: bench.bareSecrets,
    });
  const gatepassWorker = (script?: string) =>
    start({ script, vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development" }), ...bench.gatepass });
  try {
    const bare = await bareWorker({});
    const bareLogging = await bareWorker({ LOG_EACH_REQUEST: "1" });
    const gatepass = await gatepassWorker();
    const gatepassWithoutLog = await gatepassWorker("bench/gatepass-without-log.ts");
    return {
      contenders: [
        { name: "bare", url: `${bare.url}/exchange`, server: bare },
        { name: "bare+log", url: `${bareLogging.url}/exchange`, server: bareLogging },
        { name: "gatepass", url: `${gatepass.url}/v1/credentials/oidc-rp`, server: gatepass },
        { name: "gp-no-log", url: `${gatepassWithoutLog.url}/v1/credentials/oidc-rp`, server: gatepassWithoutLog },
      ],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Exchanges the tokens in turn (one project each, so the per-project rate limit is not what is measured). */
export function load(
  url: string,
  tokens: string[],
  options: { seconds: number; rate?: number },
): Promise<autocannon.Result> {
  let next = 0;
  return autocannon({
    url,
    connections: CONNECTIONS,
    duration: options.seconds,
    overallRate: options.rate,
    requests: [
      {
        method: "POST",
        setupRequest: (req) => ({
          ...req,
          headers: { ...req.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` },
        }),
      },
    ],
  });
}

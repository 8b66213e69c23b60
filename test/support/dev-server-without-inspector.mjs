// wrangler's dev server (the engine behind `wrangler dev`) with the DevTools inspector off, for the
// throughput benchmark only. The CLI always attaches its inspector proxy, which ships every console
// call through the DevTools protocol to wrangler's Node process; only this programmatic API can turn
// it off. Same workerd, same local KV/D1 and the same proxy in front of the Worker as the CLI.
//
//   node dev-server-without-inspector.mjs '{"config":…,"script":…,"port":…,"persistTo":…,"envFile":…,"vars":{…}}'
//   ("script" is optional: another entry module than the config's `main`)
import { unstable_startWorker } from "wrangler";

const { config, script, port, persistTo, envFile, vars } = JSON.parse(process.argv[2]);
const worker = await unstable_startWorker({
  config,
  ...(script ? { entrypoint: script } : {}),
  envFiles: [envFile],
  bindings: Object.fromEntries(Object.entries(vars).map(([name, value]) => [name, { type: "plain_text", value }])),
  dev: {
    inspector: false,
    persist: persistTo,
    server: { hostname: "127.0.0.1", port },
    watch: false,
    logLevel: "info",
  },
});
await worker.ready;
const stop = () => void worker.dispose().finally(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

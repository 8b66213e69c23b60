// Runs in Node before the node tests: every wrangler they start (CLI commands, `wrangler dev`) writes
// its debug log into a temporary directory removed afterwards, not into ~/.config/.wrangler/logs.
// It also builds the CLI when its build is stale, once, before tests start `gatepass` processes in
// parallel (each would otherwise find the build stale and build it itself).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

export default async function setup() {
  // @ts-expect-error: a plain JavaScript module without type declarations
  const { buildCli } = await import("../../scripts/build-cli.mjs");
  await buildCli();
  const logs = await mkdtemp(path.join(tmpdir(), "gatepass-wrangler-logs-"));
  process.env.WRANGLER_LOG_PATH = logs;
  return async () => rm(logs, { recursive: true, force: true });
}

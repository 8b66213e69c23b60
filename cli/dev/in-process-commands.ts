// The other gatepass command groups `gatepass dev` runs (policies push, jwks push, keys generate), in
// this process: no second CLI start, and a stop signal received meanwhile starts nothing more.

import { signalExitCode, stopSignal } from "./wrangler-dev-child";

type Group = "policies" | "jwks" | "keys";

/** Runs another gatepass command group in this process (no second CLI start), as `gatepass group ...args`. */
export async function runCommand(group: Group, args: string[]): Promise<number> {
  const stopping = stopSignal();
  if (stopping) return signalExitCode(stopping); // asked to stop: start nothing more
  const commands = {
    policies: () => import("../commands/policies"),
    jwks: () => import("../commands/jwks"),
    keys: () => import("../commands/keys"),
  };
  return (await commands[group]()).run(args);
}

export async function mustSucceed(group: Group, args: string[]): Promise<void> {
  const code = await runCommand(group, args);
  if (code !== 0) throw new Error(`gatepass ${group} ${args.join(" ")} failed (exit ${code})`);
}

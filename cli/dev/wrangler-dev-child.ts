// `gatepass dev`'s child `wrangler dev`, and the stop signals forwarded to it.
// A SIGINT or SIGTERM sent to `gatepass dev` alone (a process manager, an IDE's stop button, `kill`)
// would end it and orphan wrangler, whose workerd keeps the port. So the signal goes on to the
// running child, and gatepass exits with the child's status once the child is gone.

import { spawn, type ChildProcess } from "node:child_process";
import { constants } from "node:os";
import path from "node:path";
import { wranglerEnv } from "../wrangler";

const children = new Set<ChildProcess>();
let stopping: NodeJS.Signals | undefined;

const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;
const forwarders = new Set<NodeJS.SignalsListener>();

export function forwardStopSignals(): void {
  for (const signal of STOP_SIGNALS) {
    const forward = () => {
      stopping ??= signal;
      for (const child of children) child.kill(signal);
      if (children.size === 0) process.exit(signalExitCode(signal));
    };
    forwarders.add(forward);
    process.on(signal, forward);
  }
}

/** The stop signal received so far, if any: once asked to stop, `gatepass dev` starts nothing more. */
export function stopSignal(): NodeJS.Signals | undefined {
  return stopping;
}

/**
 * Removes the stop handlers the local storage brought into this process: wrangler's bundle (loaded for
 * its config reader) installs SIGINT/SIGTERM handlers that exit at once, which would orphan
 * `wrangler dev` and its workerd (Miniflare's own go when it is closed). Called once nothing of the
 * local storage is open.
 */
export function keepOnlyForwarders(): void {
  for (const signal of STOP_SIGNALS)
    for (const listener of process.listeners(signal)) if (!forwarders.has(listener)) process.off(signal, listener);
}

/** The shell's convention for a process ended by a signal. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

/** Runs `wrangler ...args` (wrangler dev) as a child process on this terminal. */
export function runWranglerDev(args: string[]): Promise<number> {
  if (stopping) return Promise.resolve(signalExitCode(stopping)); // asked to stop: start nothing more
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve("node_modules/wrangler/bin/wrangler.js"), ...args], {
      env: wranglerEnv(),
      stdio: "inherit",
    });
    children.add(child);
    child.on("error", (err) => (children.delete(child), reject(err)));
    child.on("exit", (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal ? signalExitCode(signal) : 1));
    });
  });
}

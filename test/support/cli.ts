// `gatepass ...` run in this process (cli/run.ts), its output captured: what the CLI prints and its
// exit code, without starting a Node process and tsx for each command (a third of a second of CPU
// each). Tests that need the process itself (its exit status, environment or working directory)
// run it with gatepassProcess.
import { execFile } from "node:child_process";
import path from "node:path";
import { runCli } from "../../cli/run";

const CLI = path.resolve(import.meta.dirname, "../../cli/gatepass.mjs");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  /** What it has printed so far. */
  output(): { stdout: string; stderr: string };
  /** Its result, once it returns. */
  done: Promise<CliResult>;
}

const text = (chunk: string | Uint8Array) => (typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));

/**
 * Starts one command. It borrows process.stdout and process.stderr until it returns, so run one at a
 * time (a test that follows a long-running one, `audit tail`, may read its output meanwhile).
 */
export function startInProcess(...args: string[]): RunningCli {
  let stdout = "";
  let stderr = "";
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => (
    (stdout += text(chunk)),
    true
  )) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => (
    (stderr += text(chunk)),
    true
  )) as typeof process.stderr.write;
  const done = runCli(args)
    .then((code) => ({ code, stdout, stderr }))
    .finally(() => {
      process.stdout.write = writeOut;
      process.stderr.write = writeErr;
    });
  return { output: () => ({ stdout, stderr }), done };
}

export function gatepassInProcess(...args: string[]): Promise<CliResult> {
  return startInProcess(...args).done;
}

/** `node cli/gatepass.mjs ...` as a process; its exit status, and what it printed. */
export function gatepassProcess(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], options, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

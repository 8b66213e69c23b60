// `gatepass ...` run in this process (cli/run.ts), its output captured: what the CLI prints and its
// exit code, without starting a Node process and tsx for each command (a third of a second of CPU
// each). Tests that need the process itself (signals, stdin, `npx gatepass`) still spawn it.
import { runCli } from "../../cli/run";

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
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += text(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += text(chunk)), true)) as typeof process.stderr.write;
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

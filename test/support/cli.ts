// `gatepass ...` run in this process (cli/run.ts), its output captured: what the CLI prints and its
// exit code, without starting a Node process and tsx for each command (a third of a second of CPU
// each). Tests that need the process itself (signals, stdin, `npx gatepass`) still spawn it.
import { runCli } from "../../cli/run";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const text = (chunk: string | Uint8Array) => (typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));

/** Runs one command at a time: it borrows process.stdout and process.stderr while it runs. */
export async function gatepassInProcess(...args: string[]): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += text(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += text(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await runCli(args);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}

// `gatepass ...` as a process: runs the command (cli/run.ts) and exits with its code, without waiting
// for handles a command may leave open (a wrangler child's pipes, a poll timer).
import { runCli } from "./run";

runCli(process.argv.slice(2)).then((code) => process.exit(code));

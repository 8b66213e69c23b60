// gatepass CLI dispatch. Each command group lives in cli/commands/<group>.ts and exports `run(args)`.
// Output for humans on stdout, errors on stderr; the result is the exit code: 0 on success, 1 on
// refusal, 2 on usage. cli/main.ts exits with it; the Node tests call it in process.
import { isUsageError } from "./usage";

type CommandGroup = { run(args: string[]): Promise<number>; usage: string };

const groups: Record<string, () => Promise<CommandGroup>> = {
  audit: () => import("./commands/audit"),
  deploy: () => import("./commands/deploy"),
  dev: () => import("./commands/dev"),
  jwks: () => import("./commands/jwks"),
  keys: () => import("./commands/keys"),
  policies: () => import("./commands/policies"),
  status: () => import("./commands/status"),
};

async function dispatch(argv: string[]): Promise<number> {
  const [group, ...rest] = argv;
  const load = group ? groups[group] : undefined;
  if (!load) {
    const lines = await Promise.all(Object.values(groups).map(async (l) => (await l()).usage));
    const asked = group === "help" || group === "--help" || group === "-h";
    (asked ? process.stdout : process.stderr).write(`usage: gatepass <command> ...\n\n${lines.join("\n")}\n`);
    return asked ? 0 : 2;
  }
  const command = await load();
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`usage:\n${command.usage}\n`);
    return 0;
  }
  return command.run(rest);
}

/** Runs `gatepass ...argv` and resolves with its exit code; a thrown error is reported on stderr. */
export async function runCli(argv: string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (err) {
    process.stderr.write(`gatepass: ${err instanceof Error ? err.message : String(err)}\n`);
    // A usage error (an unknown option, say) exits 2, whichever group let it through.
    return isUsageError(err) ? 2 : 1;
  }
}

// gatepass CLI dispatch. Each command group lives in cli/commands/<group>.ts and exports `run(args)`;
// it is imported only when its group runs (each is its own chunk in the built CLI), so `--help`,
// `--version` and a misspelled command load cli/help.ts and nothing else.
// Output for humans on stdout, errors on stderr; the result is the exit code: 0 on success, 1 on
// refusal, 2 on usage. cli/main.ts exits with it; the Node tests call it in process.
import { version } from "../package.json";
import { COMMANDS, GROUPS, SUMMARY, USAGE, type Group } from "./help";
import { nearest } from "./suggest";
import { isUsageError } from "./usage-error";

type CommandGroup = { run(args: string[]): Promise<number>; usage: string };

const groups: Record<Group, () => Promise<CommandGroup>> = {
  audit: () => import("./commands/audit"),
  deploy: () => import("./commands/deploy"),
  dev: () => import("./commands/dev"),
  jwks: () => import("./commands/jwks"),
  keys: () => import("./commands/keys"),
  policies: () => import("./commands/policies"),
  status: () => import("./commands/status"),
};

const isGroup = (word: string | undefined): word is Group => (GROUPS as readonly (string | undefined)[]).includes(word);

/**
 * The first word of argv that names no command: `polices` in `polices validate`, `valdate` in
 * `policies valdate`. A word after a complete command is that command's argument, not a command.
 */
function unknownCommandWord(argv: readonly string[]): { depth: number; known: string[] } | undefined {
  for (let depth = 0; depth < argv.length; depth++) {
    const word = argv[depth]!;
    if (word.startsWith("-")) return undefined;
    const prefix = argv.slice(0, depth);
    const matching = COMMANDS.filter((words) => prefix.every((w, i) => words[i] === w));
    const longer = matching.filter((words) => words.length > depth);
    if (longer.some((words) => words[depth] === word)) continue;
    if (longer.length === 0) return undefined;
    const known = [...new Set(longer.map((words) => words[depth]!))];
    // A complete command (`dev`) takes its own arguments from here on, unless the word is a near miss
    // of a longer one (`dev tokn`).
    if (matching.some((words) => words.length === depth) && !nearest(word, known)) return undefined;
    return { depth, known };
  }
  return undefined;
}

/** The command's words with the misspelled one replaced, and the words after it that continue a command. */
function correctedCommand(argv: readonly string[], depth: number, suggestion: string): string[] {
  const words = [...argv.slice(0, depth), suggestion];
  for (const word of argv.slice(depth + 1)) {
    if (!COMMANDS.some((command) => [...words, word].every((w, i) => command[i] === w))) break;
    words.push(word);
  }
  return words;
}

async function dispatch(argv: string[]): Promise<number> {
  const [group, ...rest] = argv;
  if (group === "--version" || group === "-v" || group === "version") {
    process.stdout.write(`gatepass ${version}\n`);
    return 0;
  }
  if (group === undefined || group === "help" || group === "--help" || group === "-h") {
    const text = `usage: gatepass <command> ...\n\n${GROUPS.map((g) => USAGE[g]).join("\n")}\n`;
    (group === undefined ? process.stderr : process.stdout).write(text);
    return group === undefined ? 2 : 0;
  }
  const unknown = unknownCommandWord(argv);
  if (unknown) {
    const prefix = argv.slice(0, unknown.depth).join(" ");
    const word = argv[unknown.depth]!;
    const suggestion = nearest(word, unknown.known);
    const said = prefix ? `${prefix} ${word}` : word;
    const hint = suggestion
      ? `did you mean 'gatepass ${correctedCommand(argv, unknown.depth, suggestion).join(" ")}'? `
      : "";
    process.stderr.write(
      `gatepass: unknown command '${said}'; ${hint}run 'gatepass ${prefix ? `${argv[0]} ` : ""}--help' for the list\n`,
    );
    return 2;
  }
  if (!isGroup(group)) {
    // An option where the command should be (`gatepass --frobnicate`).
    process.stderr.write(`gatepass: unknown command '${group}'; run 'gatepass --help' for the list\n`);
    return 2;
  }
  const command = await groups[group]();
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${SUMMARY[group]}\nusage:\n${command.usage}\n`);
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

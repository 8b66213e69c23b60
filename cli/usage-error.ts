// Usage errors: the command line itself is wrong (exit 2), as opposed to a refusal (exit 1).

/** A contradictory or incomplete command line that parseArgs cannot catch by itself. */
export class UsageError extends Error {}

/** A UsageError, or an unknown or malformed option found by node:util parseArgs. */
export function isUsageError(err: unknown): boolean {
  if (err instanceof UsageError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}

/** Where every description starts, in each group's usage and in `gatepass --help`, which joins them. */
export const HELP_COLUMN = 36;

/** One command in a usage text. */
export interface CommandHelp {
  /** Synopsis lines. The first starts with the command's words (`policies push`); a later line that starts
   *  with a word too is another form of the command, any other line continues the one above it and is
   *  set under the option that follows the command's words. */
  synopsis: string[];
  /** What the command does, one line each; on the synopsis line when it is one line and fits. */
  help: string[];
}

/** A group's usage text, laid out by computing columns rather than padding by hand. */
export function formatUsage(commands: readonly CommandHelp[]): string {
  const lines: string[] = [];
  for (const { synopsis, help } of commands) {
    let indent = 2;
    for (const line of synopsis) {
      if (/^[a-z]/.test(line)) {
        // The command's words: everything up to the first option, argument or alternative.
        indent = 2 + (/^[a-z][\w-]*( [a-z][\w-]*)* /.exec(line)?.[0].length ?? 0);
        lines.push(`  ${line}`);
      } else {
        lines.push(`${" ".repeat(indent)}${line}`);
      }
    }
    const [first, ...rest] = help;
    const last = lines.length - 1;
    const fits = synopsis.length === 1 && lines[last]!.length + 2 <= HELP_COLUMN;
    if (first !== undefined && fits) lines[last] = `${lines[last]!.padEnd(HELP_COLUMN)}${first}`;
    else if (first !== undefined) rest.unshift(first);
    for (const line of rest) lines.push(`${" ".repeat(HELP_COLUMN)}${line}`);
  }
  return lines.join("\n");
}

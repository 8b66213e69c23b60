// Usage errors: the command line itself is wrong (exit 2), as opposed to a refusal (exit 1).

/** A contradictory or incomplete command line that parseArgs cannot catch by itself. */
export class UsageError extends Error {}

/** A UsageError, or an unknown or malformed option found by node:util parseArgs. */
export function isUsageError(err: unknown): boolean {
  if (err instanceof UsageError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}

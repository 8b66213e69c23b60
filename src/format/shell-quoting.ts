// Shell-safe output. `env` is meant for `eval "$(curl ...)"`, so every value is single-quoted: inside
// single quotes a POSIX shell interprets nothing, and a quote in the value is written as '\''.
// Variable names are fixed by gatepass, never taken from input.

import { GatepassError } from "../errors";

export type EnvEntries = ReadonlyArray<readonly [name: string, value: string]>;

const NAME = /^[A-Z_][A-Z0-9_]*$/;

/**
 * The CI job's own variables (templates/gatepass.yml): GATEPASS_ID_TOKEN is the job's ID token that
 * every gatepass call sends, the others configure the template. Output is evaluated in the job's
 * shell, so exporting over any of them would break later calls; it is a bug, refused outright.
 */
export const JOB_VARIABLES: ReadonlySet<string> = new Set([
  "GATEPASS_ID_TOKEN",
  "GATEPASS_URL",
  "GATEPASS_TARGET",
  "GATEPASS_FORMAT",
  "GATEPASS_LIFETIME",
  "GATEPASS_SCOPE",
]);

export function shellQuote(value: string): string {
  // NUL cannot be represented in a shell word at all; refuse rather than truncate.
  if (value.includes("\0"))
    throw new GatepassError("format_unsupported", { description: "A value contains a NUL byte; use format=json." });
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

export function formatEnv(entries: EnvEntries): string {
  return entries.map(([name, value]) => `export ${checkedName(name)}=${shellQuote(value)}\n`).join("");
}

/**
 * `.env` files have no single quoting standard (docker --env-file takes values verbatim, GitLab's
 * dotenv reports and the dotenv libraries differ), so values are written bare and only when they
 * need no quoting under any of them. Credentials (base64, JWTs, URLs) always qualify.
 */
const DOTENV_SAFE = /^[A-Za-z0-9+/=._:@,%~-]*$/;

export function formatDotenv(entries: EnvEntries): string {
  return entries
    .map(([name, value]) => {
      if (!DOTENV_SAFE.test(value)) {
        throw new GatepassError("format_unsupported", {
          description: `The value of ${name} cannot be written safely as dotenv; use format=env or format=json.`,
        });
      }
      return `${checkedName(name)}=${value}\n`;
    })
    .join("");
}

function checkedName(name: string): string {
  if (!NAME.test(name) || JOB_VARIABLES.has(name)) throw new Error(`bad variable name ${name}`);
  return name;
}

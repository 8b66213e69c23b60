// The CLI's one door to KV, D1 and secrets, spoken in wrangler's command language, so the same command
// works against local state (--local) and a real account (--remote). --remote commands (and local
// `d1 migrations apply`) run wrangler, the project's own copy; other --local commands are answered in
// this process by cli/local-storage.ts, through Miniflare, wrangler's own local engine.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { UsageError } from "./usage-error";

export interface WranglerTarget {
  /** true: Cloudflare account; false: local state under .wrangler/ (or persistTo). */
  remote: boolean;
  /** wrangler environment (`--env NAME`). */
  env?: string;
  /** Local state directory (`--persist-to`), for tests and the demo. */
  persistTo?: string;
  /** wrangler config file; default ./wrangler.toml. */
  config?: string;
}

export interface WranglerResult {
  code: number;
  stdout: string;
  stderr: string;
}

const require = createRequire(import.meta.url);
const WRANGLER_BIN = path.join(path.dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");

/**
 * The environment wrangler runs in: no usage metrics, and no fetch of Cloudflare's sample
 * `request.cf` object on a local start (gatepass never reads `request.cf`; offline, the fetch only
 * prints a stack trace).
 */
export function wranglerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", ...extra };
}

/** The options of every command that reads or writes gatepass's storage (for node:util parseArgs). */
export const STORAGE_OPTIONS = {
  local: { type: "boolean" },
  remote: { type: "boolean" },
  env: { type: "string" },
  "persist-to": { type: "string" },
  config: { type: "string" },
} as const;

/** The STORAGE_OPTIONS values parseArgs gives. */
export type StorageValues = { local?: boolean; remote?: boolean; env?: string; "persist-to"?: string; config?: string };

/** Where a storage command acts, from its STORAGE_OPTIONS values; a contradiction is a usage error. */
export function storageTarget(values: StorageValues): WranglerTarget {
  if (values.local && values.remote) throw new UsageError("choose one of --local and --remote");
  if (values.remote && values["persist-to"]) throw new UsageError("--persist-to only applies to --local");
  return {
    remote: values.remote === true,
    ...(values.env ? { env: values.env } : {}),
    ...(values["persist-to"] ? { persistTo: values["persist-to"] } : {}),
    ...(values.config ? { config: values.config } : {}),
  };
}

/** Flags that select where a KV/D1 command acts (remote D1 without a database_id: cli/remote-d1.ts). */
export function targetFlags(target: WranglerTarget): string[] {
  const flags = [target.remote ? "--remote" : "--local"];
  if (target.env) flags.push("--env", target.env);
  if (target.persistTo && !target.remote) flags.push("--persist-to", target.persistTo);
  if (target.config) flags.push("--config", target.config);
  return flags;
}

/** The local path, loaded on first use: Miniflare (and workerd) only for commands that touch local state. */
let local: Promise<typeof import("./local-storage")> | undefined;

export async function runWrangler(
  args: string[],
  options: { input?: string; cwd?: string } = {},
): Promise<WranglerResult> {
  if (answeredInProcess(args)) return (await (local ??= import("./local-storage"))).runLocal(args, options);
  // wrangler opens the local state itself (a migration): the in-process Miniflares let go of it first.
  await closeLocalStorage();
  return spawnWrangler(args, options);
}

/** --local KV and D1 commands, except `d1 migrations apply`, which wrangler keeps (its d1_migrations bookkeeping). */
function answeredInProcess(args: readonly string[]): boolean {
  return args.includes("--local") && !(args[0] === "d1" && args[1] === "migrations");
}

/** Runs wrangler itself as a child process, whatever the command. */
export function spawnWrangler(args: string[], options: { input?: string; cwd?: string } = {}): Promise<WranglerResult> {
  return runNode([WRANGLER_BIN, ...args], options);
}

/** Lets go of the local state this process holds open (before `wrangler dev` or wrangler itself opens it). */
export async function closeLocalStorage(): Promise<void> {
  await (await local)?.closeLocalStorage();
}

/** Runs `node ...args` the way wrangler is run (runWrangler), collecting its output as UTF-8 text. */
export function runNode(args: string[], options: { input?: string; cwd?: string } = {}): Promise<WranglerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: options.cwd ?? process.cwd(),
      env: wranglerEnv({ CI: process.env.CI ?? "true" }),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    // A streaming decoder: a multi-byte character split across two pipe chunks stays one character
    // (decoding each chunk on its own would turn both halves into U+FFFD).
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}

/** Runs wrangler and throws with its output when it fails. */
export async function wrangler(args: string[], options: { input?: string; cwd?: string } = {}): Promise<string> {
  const result = await runWrangler(args, options);
  if (result.code !== 0) {
    throw new Error(
      `wrangler ${args.slice(0, 3).join(" ")} failed (exit ${result.code}):\n${result.stderr || result.stdout}`,
    );
  }
  return result.stdout;
}

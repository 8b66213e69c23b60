// Runs gatepass for real (`wrangler dev`: workerd, local KV/D1) for Node tests and end-to-end suites.
// Each instance gets its own free ports and state directory, D1 migrations applied, optional KV seeds,
// vars on the command line and secrets in a private env file (the repo's .dev.vars is never read).
//
//   const gp = await startWranglerDev({ vars: (url) => ({ GATEPASS_ISSUER: url }), secrets: {...}, kv: [...] });
//   await fetch(`${gp.url}/healthz`); ...; await gp.stop();
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { closeLocalStorage, wrangler, wranglerEnv } from "../../cli/wrangler";

const ROOT = path.resolve(import.meta.dirname, "../..");
const WRANGLER_BIN = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const STATE_TEMPLATES = path.join(ROOT, "node_modules/.cache/gatepass-migrated-state");

export interface KvSeed {
  binding: "JWKS" | "POLICIES";
  key: string;
  value: string;
}

export interface WranglerDevOptions {
  /** Plain vars (`--var`); a function receives the instance's URL, e.g. for GATEPASS_ISSUER. */
  vars?: Record<string, string> | ((url: string) => Record<string, string>);
  /** Secrets, written to a private env file (never on the command line, never in .dev.vars). */
  secrets?: Record<string, string>;
  /** KV entries written before the Worker starts. */
  kv?: KvSeed[];
  /**
   * A state directory the caller prepared (copyMigratedState, then pushes) and removes; default: a
   * fresh temporary one with the migrations applied, removed on stop.
   */
  persistTo?: string;
  /** How long to wait for /healthz. */
  startTimeoutMs?: number;
  /** Another wrangler config (e.g. a baseline Worker for benchmarks); such a Worker gets no D1 migrations. */
  config?: string;
  /** Another entry module with the config's bindings (e.g. a benchmark variant of gatepass). */
  script?: string;
  /** Discard stdout (the Worker's log lines): benchmarks must not spend the load generator's CPU on them. */
  quiet?: boolean;
  /**
   * false: run wrangler's dev server through its programmatic API with the DevTools inspector off
   * (see dev-server-without-inspector.mjs). Benchmarks only; everything else runs the CLI.
   */
  inspector?: boolean;
}

export interface WranglerDev {
  url: string;
  port: number;
  /** The wrangler process; it leads its own process group, which holds workerd and esbuild too. */
  pid: number;
  persistTo: string;
  /** Everything wrangler and the Worker printed so far (for assertions on logs and for debugging). */
  output(): string;
  /** Writes a KV entry into the local state (visible to the running Worker). */
  putKv(seed: KvSeed): Promise<void>;
  stop(): Promise<void>;
}

export async function startWranglerDev(options: WranglerDevOptions = {}): Promise<WranglerDev> {
  const ownsState = options.persistTo === undefined;
  const persistTo = options.persistTo ?? (await mkdtemp(path.join(tmpdir(), "gatepass-dev-")));
  const scratch = await mkdtemp(path.join(tmpdir(), "gatepass-dev-secrets-"));
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${port}`;

  const putKv = async (seed: KvSeed) => {
    const file = path.join(scratch, `kv-${crypto.randomUUID()}`);
    await writeFile(file, seed.value, { mode: 0o600 });
    await wrangler(
      ["kv", "key", "put", seed.key, "--binding", seed.binding, "--path", file, "--local", "--persist-to", persistTo],
      { cwd: ROOT },
    );
    await rm(file);
  };

  if (ownsState && !options.config) await copyMigratedState(persistTo);
  for (const seed of options.kv ?? []) await putKv(seed);
  // wrangler dev opens the state next: this process lets go of it (and of Miniflare's signal handlers).
  await closeLocalStorage();

  const envFile = path.join(scratch, "secrets.env");
  await writeFile(
    envFile,
    Object.entries(options.secrets ?? {})
      .map(([k, v]) => `${k}=${dotenvQuote(v)}\n`)
      .join(""),
    { mode: 0o600 },
  );
  const vars = typeof options.vars === "function" ? options.vars(url) : (options.vars ?? {});
  const config = options.config ?? path.join(ROOT, "wrangler.toml");
  const args =
    options.inspector === false
      ? [
          path.join(import.meta.dirname, "dev-server-without-inspector.mjs"),
          JSON.stringify({ config, script: options.script, port, persistTo, envFile, vars }),
        ]
      : [
          WRANGLER_BIN,
          "dev",
          ...(options.script ? [options.script] : []),
          "--ip",
          "127.0.0.1",
          "--port",
          String(port),
          "--inspector-port",
          String(inspectorPort),
          "--persist-to",
          persistTo,
          "--env-file",
          envFile,
          "--show-interactive-dev-session=false",
          "--log-level",
          "info",
          ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
          "--config",
          config,
        ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    detached: true, // its own process group, so stop() also ends workerd
    // wrangler appends every line it prints to a debug log; keep it in the scratch directory (removed
    // on stop) rather than let test and benchmark runs pile up gigabytes in ~/.config/.wrangler/logs.
    env: wranglerEnv({ CI: "true", NO_COLOR: "1", WRANGLER_LOG_PATH: path.join(scratch, "wrangler-logs") }),
    stdio: ["ignore", options.quiet ? "ignore" : "pipe", "pipe"],
  });
  let output = "";
  // Decoded as streams, so a UTF-8 character split across chunks stays whole.
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (output += d));

  const stop = async () => {
    await terminate(child);
    await rm(scratch, { recursive: true, force: true });
    if (ownsState) await rm(persistTo, { recursive: true, force: true });
  };
  try {
    await waitForHealth(url, child, options.startTimeoutMs ?? 60_000, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, pid: child.pid!, persistTo, output: () => output, putKv, stop };
}

/** Fills `persistTo` (a new directory) with local state whose D1 has every migration applied. */
export async function copyMigratedState(persistTo: string): Promise<void> {
  await cp(await migratedStateTemplate(), persistTo, { recursive: true });
}

/**
 * A local state directory with the D1 migrations applied, made once per set of migrations and
 * wrangler version and copied into each fresh instance: `wrangler d1 migrations apply` costs a second
 * or two of CPU per start, and the demo and the end-to-end tests start gatepass five times a run.
 */
async function migratedStateTemplate(): Promise<string> {
  const hash = createHash("sha256");
  hash.update(JSON.parse(await readFile(path.join(ROOT, "node_modules/wrangler/package.json"), "utf8")).version);
  const migrations = path.join(ROOT, "migrations");
  for (const name of (await readdir(migrations)).sort())
    hash.update(`\0${name}\0`).update(await readFile(path.join(migrations, name)));
  const template = path.join(STATE_TEMPLATES, hash.digest("hex").slice(0, 16));
  if (await stat(template).catch(() => undefined)) return template;
  await mkdir(STATE_TEMPLATES, { recursive: true });
  const partial = await mkdtemp(path.join(STATE_TEMPLATES, "partial-"));
  try {
    await wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", partial], { cwd: ROOT });
    // Renamed whole: a concurrent start either finds no template or a complete one.
    await rename(partial, template);
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    if (!(await stat(template).catch(() => undefined))) throw err; // another start made it first otherwise
  }
  return template;
}

/** dotenv: a single-quoted value is literal; refuse what cannot be expressed that way. */
function dotenvQuote(value: string): string {
  if (value.includes("'") || value.includes("\n"))
    throw new Error("secret values must not contain a single quote or newline");
  return `'${value}'`;
}

async function waitForHealth(url: string, child: ChildProcess, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${output()}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`wrangler dev did not answer /healthz within ${timeoutMs} ms:\n${output()}`);
}

/**
 * Stops wrangler's whole process group and returns once it is empty: workerd gets the same SIGTERM
 * and may outlive wrangler by a moment (longer on a loaded machine), still holding the port.
 */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return;
  const pgid = child.pid;
  const signal = (sig: NodeJS.Signals | 0): boolean => {
    try {
      process.kill(-pgid, sig);
      return true;
    } catch {
      return false; // the group is empty
    }
  };
  const emptied = async (timeoutMs: number): Promise<boolean> => {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      if (!signal(0)) return true;
    }
    return !signal(0);
  };
  if (!signal("SIGTERM")) return;
  if (await emptied(5_000)) return;
  signal("SIGKILL");
  await emptied(5_000);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

// wrangler's local KV and D1 commands (`--local`), answered in this process: the CLI's local path.
// A real `wrangler kv …`/`d1 execute` costs about a second of CPU (loading wrangler's 12 MB bundle,
// then starting Miniflare and workerd for one operation), and a `policies push` runs a dozen. This keeps
// one Miniflare (wrangler's own local engine) per state directory and does what wrangler 4.86's local
// handlers do, read from its bundle: the same config reading (wrangler's own export) and SQL
// splitting (its algorithm, cli/sql-split.ts), the same storage ids and on-disk layout (`<persist-to>/v3/{kv,d1}`, by
// default
// `.wrangler/state` beside the config), the same KV calls, one D1 batch per command, and the same
// output. test/node/local-wrangler.test.ts runs each command through this and through wrangler and
// compares what they print and store. cli/wrangler.ts sends every `--local` command here except
// `d1 migrations apply`, which stays on wrangler; `--remote` commands never come here.
//
// To answer a new command shape: add its flags to FLAGS and its verb to `answer`, and a case to the
// contract test.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Miniflare } from "miniflare";
import { splitSqlQuery } from "./sql-split";

type Options = { input?: string; cwd?: string };

/** The part of wrangler's config the local commands read. wrangler's own type comes from a package
 * it bundles rather than installs (@cloudflare/workers-utils), so TypeScript cannot see it. */
interface StorageConfig {
  kv_namespaces: { binding: string; id?: string; preview_id?: string }[];
  d1_databases: { binding: string; database_name?: string; database_id?: string; preview_database_id?: string }[];
}

/** Flags the CLI passes, and whether each takes a value. Anything else is refused, not guessed at. */
const FLAGS: Record<string, boolean> = {
  "--binding": true,
  "--persist-to": true,
  "--config": true,
  "--env": true,
  "--path": true,
  "--ttl": true,
  "--prefix": true,
  "--command": true,
  "--file": true,
  "--local": false,
  "--text": false,
  "--json": false,
  "--yes": false,
  "--force": false,
};

interface Parsed {
  positionals: string[];
  flags: Map<string, string | true>;
}

function parse(args: string[]): Parsed {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    if (!(arg in FLAGS))
      throw new Error(
        `local storage: wrangler ${args.join(" ")}: ${arg} is not a flag it knows (add it to cli/local-storage.ts)`,
      );
    if (FLAGS[arg]) {
      const value = args[++i];
      if (value === undefined) throw new Error(`local storage: ${arg} needs a value`);
      flags.set(arg, value);
    } else flags.set(arg, true);
  }
  return { positionals, flags };
}

interface Storage {
  kv(binding: string): Promise<KVNamespace>;
  d1(name: string): Promise<D1Database>;
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

let engines: ReturnType<typeof loadEngines> | undefined;

/**
 * Miniflare and wrangler's config reader, loaded on the first local command (the CLI's chunks import
 * no package when they load). Loading wrangler's bundle installs SIGINT and SIGTERM handlers that exit
 * at once with status 0, which would cut short what the running command does on a signal (the demo's
 * and `gatepass dev`'s clean-up, their exit status): those are removed again. Miniflare's own
 * handlers, which stop workerd, come with each Miniflare and go with closeLocalStorage.
 */
async function loadEngines() {
  const before = STOP_SIGNALS.map((signal) => new Set(process.listeners(signal)));
  try {
    const [{ Miniflare }, { unstable_readConfig }] = await Promise.all([import("miniflare"), import("wrangler")]);
    return { Miniflare, readConfig: unstable_readConfig };
  } finally {
    STOP_SIGNALS.forEach((signal, i) => {
      for (const listener of process.listeners(signal)) if (!before[i]!.has(listener)) process.off(signal, listener);
    });
  }
}

/** One Miniflare per state directory and set of storage ids, as wrangler names them for --local. */
class LocalStates {
  private readonly instances = new Map<string, { key: string; mf: Miniflare }>();

  async open(parsed: Parsed, cwd: string): Promise<Storage> {
    const { Miniflare, readConfig } = await (engines ??= loadEngines());
    const config: StorageConfig & { userConfigPath?: string } = readConfig(
      { config: stringFlag(parsed, "--config") ?? path.join(cwd, "wrangler.toml"), env: stringFlag(parsed, "--env") },
      { hideWarnings: true },
    );
    // wrangler's getKVNamespaceId and getDatabaseInfoFromConfig, for a local command.
    const kvIds = new Map(config.kv_namespaces.map((ns) => [ns.binding, ns.id || ns.preview_id || ns.binding]));
    const d1Ids = new Map<string, string>();
    for (const db of config.d1_databases) {
      const id = db.preview_database_id ?? db.database_id ?? db.binding;
      d1Ids.set(db.binding, id);
      if (db.database_name) d1Ids.set(db.database_name, id);
    }
    // wrangler's getLocalPersistencePath: --persist-to from the working directory, else beside the config.
    const persistTo = stringFlag(parsed, "--persist-to");
    const base = persistTo
      ? path.resolve(cwd, persistTo)
      : path.resolve(config.userConfigPath ? path.dirname(config.userConfigPath) : cwd, ".wrangler/state");
    const root = path.join(base, "v3");
    const key = JSON.stringify([[...kvIds.values()].sort(), [...new Set(d1Ids.values())].sort()]);
    let instance = this.instances.get(root);
    if (instance?.key !== key) {
      await instance?.mf.dispose();
      const mf = new Miniflare({
        modules: true,
        script: "export default {}",
        defaultPersistRoot: root,
        kvNamespaces: Object.fromEntries([...new Set(kvIds.values())].map((id) => [id, id])),
        d1Databases: Object.fromEntries([...new Set(d1Ids.values())].map((id) => [id, id])),
      });
      instance = { key, mf };
      this.instances.set(root, instance);
    }
    const mf = instance.mf;
    return {
      kv: async (binding) => {
        const id = kvIds.get(binding);
        if (!id)
          throw new Error(
            `A namespace with binding name "${binding}" was not found in the configured "kv_namespaces".`,
          );
        return (await mf.getKVNamespace(id)) as unknown as KVNamespace;
      },
      d1: async (name) => {
        const id = d1Ids.get(name);
        if (!id)
          throw new Error(`Couldn't find a D1 DB with the name or binding '${name}' in your wrangler.toml file.`);
        return (await mf.getD1Database(id)) as unknown as D1Database;
      },
    };
  }

  /** Closes every Miniflare, so real wrangler can open the same state directories. */
  async close(): Promise<void> {
    await Promise.all([...this.instances.values()].map(({ mf }) => mf.dispose()));
    this.instances.clear();
  }
}

function stringFlag(parsed: Parsed, flag: string): string | undefined {
  const value = parsed.flags.get(flag);
  return typeof value === "string" ? value : undefined;
}

function requireFlag(parsed: Parsed, flag: string): string {
  const value = stringFlag(parsed, flag);
  if (value === undefined) throw new Error(`local storage: ${flag} is required here`);
  return value;
}

type KvPair = {
  key: string;
  value: string;
  expiration?: number;
  expiration_ttl?: number;
  metadata?: unknown;
  base64?: boolean;
};

async function kvCommand(command: string, parsed: Parsed, storage: Storage, cwd: string): Promise<string> {
  const kv = await storage.kv(requireFlag(parsed, "--binding"));
  const [, , , name] = parsed.positionals;
  switch (command) {
    case "key get": {
      const value = await kv.get(name!, "arrayBuffer");
      if (value === null) return "Value not found\n";
      if (!parsed.flags.has("--text"))
        throw new Error("local storage: kv key get without --text prints raw bytes; the CLI always passes --text");
      return `${new TextDecoder().decode(value)}\n`;
    }
    case "key put": {
      const file = stringFlag(parsed, "--path");
      const value = file ? await readFile(path.resolve(cwd, file)) : parsed.positionals[4];
      if (value === undefined) throw new Error("local storage: kv key put needs a value or --path");
      const ttl = stringFlag(parsed, "--ttl");
      // As wrangler passes it: Miniflare's KV takes a stream, not a Node Buffer.
      await kv.put(name!, new Blob([value]).stream() as ReadableStream, ttl ? { expirationTtl: Number(ttl) } : {});
      return `Writing ${file ? `the contents of ${file}` : "the value"} to the key "${name}".\n`;
    }
    case "key list": {
      const prefix = stringFlag(parsed, "--prefix");
      const { keys } = await kv.list(prefix === undefined ? {} : { prefix });
      return `${JSON.stringify(keys, undefined, 2)}\n`;
    }
    case "bulk put": {
      const pairs = JSON.parse(await readFile(path.resolve(cwd, name!), "utf8")) as KvPair[];
      for (const pair of pairs) {
        const data = pair.base64 ? Buffer.from(pair.value, "base64").toString() : pair.value;
        await kv.put(pair.key, data, {
          expiration: pair.expiration,
          expirationTtl: pair.expiration_ttl,
          metadata: pair.metadata,
        });
      }
      return "Success!\n";
    }
    case "bulk delete": {
      if (!parsed.flags.has("--force"))
        throw new Error("local storage: kv bulk delete without --force asks for confirmation");
      const items = JSON.parse(await readFile(path.resolve(cwd, name!), "utf8")) as (string | { name: string })[];
      for (const item of items) await kv.delete(typeof item === "string" ? item : item.name);
      return "Success!\n";
    }
    default:
      throw new Error(`local storage: kv ${command} is not supported`);
  }
}

async function d1Execute(parsed: Parsed, storage: Storage, cwd: string): Promise<string> {
  const db = await storage.d1(parsed.positionals[2]!);
  const file = stringFlag(parsed, "--file");
  const command = stringFlag(parsed, "--command");
  if ((file === undefined) === (command === undefined))
    throw new Error("local storage: d1 execute takes one of --command and --file");
  const sql = file === undefined ? command! : await readFile(path.resolve(cwd, file), "utf8");
  let results: D1Result[];
  try {
    results = await db.batch(splitSqlQuery(sql).map((query) => db.prepare(query)));
  } catch (err) {
    const cause = (err as { cause?: Error }).cause ?? (err as Error);
    // What wrangler prints for a failed --json command, or its error line otherwise.
    throw new Error(
      parsed.flags.has("--json")
        ? JSON.stringify({ error: { text: cause.message } }, null, 2)
        : `✘ [ERROR] ${cause.message}`,
    );
  }
  const printed = results.map((result) => ({
    results: (result.results ?? []).map((row) =>
      Object.fromEntries(
        Object.entries(row as Record<string, unknown>).map(([column, value]) => [
          column,
          Array.isArray(value) ? `[${value.join(", ")}]` : value,
        ]),
      ),
    ),
    success: result.success,
    meta: { duration: result.meta?.duration },
  }));
  return `${JSON.stringify(printed, null, 2)}\n`;
}

/** The Miniflares of this process's state directories. */
const states = new LocalStates();

async function answer(args: string[], options: Options = {}): Promise<string> {
  const cwd = options.cwd ?? process.cwd();
  const parsed = parse(args);
  const [group, verb, subject] = parsed.positionals;
  if (group === "kv" && (verb === "key" || verb === "bulk"))
    return kvCommand(`${verb} ${subject}`, parsed, await states.open(parsed, cwd), cwd);
  if (group === "d1" && verb === "execute") return d1Execute(parsed, await states.open(parsed, cwd), cwd);
  throw new Error(
    `local storage: wrangler ${args.join(" ")} is not answered in process (only --local kv key/bulk and d1 execute ` +
      `are)`,
  );
}

/** Answers a local wrangler command as wrangler would: its exit code and output. */
export async function runLocal(
  args: string[],
  options: Options = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    return { code: 0, stdout: await answer(args, options), stderr: "" };
  } catch (err) {
    return { code: 1, stdout: "", stderr: `${(err as Error).message}\n` };
  }
}

/**
 * Closes every Miniflare, so wrangler (a migration, `wrangler dev`) opens the state alone. A process
 * that exits needs no call: Miniflare stops its workerd on exit.
 */
export function closeLocalStorage(): Promise<void> {
  return states.close();
}

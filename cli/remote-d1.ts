// Remote D1 for a wrangler config that names its database without an id.
//
// wrangler 4.86 looks a D1 database up by name only for `wrangler deploy`; its `d1` commands with
// --remote need database_id in the config (workers-sdk #13632, fixed in wrangler 4.102, which needs
// Node 22). wrangler.toml leaves the id out (the first deploy provisions the database), so a command
// that reaches remote D1 finds the database by database_name with `wrangler d1 list` and runs its D1
// commands against a temporary copy of the config that carries the id. Only `gatepass deploy`
// creates a database that is missing.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { explainMissingTables, requireLocalState } from "./local-state";
import { targetFlags, wrangler, type WranglerTarget } from "./wrangler";

export interface D1Binding {
  binding: string;
  database_name?: string;
  database_id?: string;
  migrations_dir?: string;
  migrations_table?: string;
}

/** The config as wrangler resolves it for an --env: what deploy checks, and what a copy needs. */
export interface WorkerConfig {
  name: string;
  vars: Record<string, unknown>;
  accountId?: string;
  compatibilityDate?: string;
  /** Absolute: the copy lives elsewhere and must name migrations_dir from here. */
  configPath: string;
  db?: D1Binding;
}

/** wrangler's config reader, loaded on first use: importing wrangler takes most of a second, and the
 *  commands that import this module without reaching remote D1 (`policies validate`) must not pay it. */
function wranglerApi(): typeof import("wrangler") {
  return createRequire(import.meta.url)("wrangler") as typeof import("wrangler");
}

/** Reads the config (wrangler's own lookup when `config` is undefined), with `env`'s own vars and bindings. */
export function readWorkerConfig(config: string | undefined, env: string | undefined): WorkerConfig {
  const read = wranglerApi().unstable_readConfig({ ...(config ? { config } : {}), ...(env ? { env } : {}) });
  const db = (read.d1_databases as D1Binding[]).find((d) => d.binding === "DB");
  return {
    name: read.name ?? "gatepass",
    vars: read.vars as Record<string, unknown>,
    ...(read.account_id ? { accountId: read.account_id } : {}),
    ...(read.compatibility_date ? { compatibilityDate: read.compatibility_date } : {}),
    configPath: path.resolve(read.configPath ?? config ?? "wrangler.toml"),
    ...(db ? { db } : {}),
  };
}

/** Refuses an --env the config has no section for: wrangler would warn and act on the top level's resources. */
export function requireEnvSection(config: string, env: string): void {
  const { rawConfig } = wranglerApi().experimental_readRawConfig({ config });
  if (!rawConfig.env?.[env])
    throw new Error(
      `${config} has no [env.${env}] section; add one (with its own vars and bindings) or leave out --env`,
    );
}

/** The DB binding, with the database_name a lookup needs when it has no database_id. */
export function requireDbBinding(worker: WorkerConfig, env: string | undefined): D1Binding {
  const db = worker.db;
  if (!db)
    throw new Error(
      `the config${env ? ` for --env ${env}` : ""} has no [[d1_databases]] binding named DB (wrangler does not ` +
        `inherit bindings into [env.NAME]: repeat them there)`,
    );
  if (!db.database_id && !db.database_name)
    throw new Error("the DB binding has neither database_name nor database_id; give it a database_name");
  return db;
}

/** The id of the account's D1 database named `name`, or undefined. `flags` select the config, hence the account. */
export async function findDatabase(name: string, flags: string[]): Promise<string | undefined> {
  const output = await wrangler(["d1", "list", "--json", ...flags]);
  let list: unknown;
  try {
    list = JSON.parse(output.slice(output.indexOf("[")));
  } catch {
    throw new Error(`wrangler d1 list --json printed no JSON list:\n${output}`);
  }
  const found = Array.isArray(list)
    ? (list as { name?: unknown; uuid?: unknown }[]).find((entry) => entry.name === name)
    : undefined;
  return typeof found?.uuid === "string" ? found.uuid : undefined;
}

/**
 * Writes `dir`/wrangler.json, a minimal config for `wrangler d1`/`kv` --remote: the Worker's name
 * and account, DB with its id, KV by binding. Already resolved for the --env, so used without one.
 */
export async function writeConfigWithDatabaseId(
  worker: WorkerConfig,
  db: D1Binding,
  uuid: string,
  dir: string,
): Promise<string> {
  const file = path.join(dir, "wrangler.json");
  const config = {
    name: worker.name,
    ...(worker.accountId ? { account_id: worker.accountId } : {}),
    ...(worker.compatibilityDate ? { compatibility_date: worker.compatibilityDate } : {}),
    kv_namespaces: [{ binding: "JWKS" }, { binding: "POLICIES" }],
    d1_databases: [
      {
        binding: "DB",
        database_name: db.database_name,
        database_id: uuid,
        migrations_dir: path.resolve(path.dirname(worker.configPath), db.migrations_dir ?? "migrations"),
        ...(db.migrations_table ? { migrations_table: db.migrations_table } : {}),
      },
    ],
  };
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/** A temporary directory for a config copy; the caller removes it. */
export function configCopyDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), "gatepass-d1-"));
}

/**
 * Where a storage command acts. KV commands use the operator's flags (wrangler finds a KV namespace
 * without id on the deployed Worker). D1 commands too, except remotely with a DB binding that has no
 * database_id: then, on first use, the database is looked up once and the flags name a copy of the
 * config carrying its id, which close() removes.
 */
export class StorageTarget {
  private d1?: Promise<string[]>;
  private copyDir?: string;

  constructor(readonly target: WranglerTarget) {}

  get remote(): boolean {
    return this.target.remote;
  }

  kvFlags(): string[] {
    return targetFlags(this.target);
  }

  d1Flags(): Promise<string[]> {
    return (this.d1 ??= this.resolveD1());
  }

  async close(): Promise<void> {
    if (this.copyDir) await rm(this.copyDir, { recursive: true, force: true });
  }

  private async resolveD1(): Promise<string[]> {
    if (!this.target.remote) return targetFlags(this.target);
    const { config, env } = this.target;
    const worker = readWorkerConfig(config, env);
    const db = requireDbBinding(worker, env);
    if (db.database_id) return targetFlags(this.target);
    if (env) requireEnvSection(worker.configPath, env);
    const lookup = [...(env ? ["--env", env] : []), ...(config ? ["--config", config] : [])];
    const uuid = await findDatabase(db.database_name!, lookup);
    if (!uuid) {
      throw new Error(
        `the account has no D1 database named ${db.database_name} (database_name of the DB binding in ` +
          `${worker.configPath}${env ? ` for --env ${env}` : ""}): ` +
          `run \`npx gatepass deploy${env ? ` --env ${env}` : ""}\` first, which creates it`,
      );
    }
    this.copyDir = await configCopyDir();
    return ["--remote", "--config", await writeConfigWithDatabaseId(worker, db, uuid, this.copyDir)];
  }
}

/**
 * Runs a storage command against `target`, removing any config copy when it ends, failed or not.
 * Locally, a database that does not exist yet, or lacks its tables, is one line saying what to run first.
 */
export async function withStorage<T>(target: WranglerTarget, use: (storage: StorageTarget) => Promise<T>): Promise<T> {
  requireLocalState(target);
  const storage = new StorageTarget(target);
  try {
    return await use(storage);
  } catch (error) {
    throw explainMissingTables(error, target);
  } finally {
    await storage.close();
  }
}

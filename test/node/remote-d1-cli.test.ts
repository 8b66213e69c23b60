// The --remote storage commands with a config whose DB binding has no database_id (as wrangler.toml
// is), in process with wrangler replaced by a recorder playing a Cloudflare account: wrangler 4.86's
// `d1` commands need the id, so each command looks the database up once (`wrangler d1 list`) and runs
// its D1 commands against a temporary copy of the config that carries it, removed when the command
// ends; its KV commands keep the operator's config. (deploy-cli.test.ts covers deploy's own use.)
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { run as audit } from "../../cli/commands/audit";
import { run as jwks } from "../../cli/commands/jwks";
import { run as policies } from "../../cli/commands/policies";
import { checkPolicyDir } from "../../cli/policy/policy-files";
import { historyReadBack, type HistoryReadBack } from "../support/history-readback";
import { wrangler } from "../../cli/wrangler";

vi.mock("../../cli/wrangler", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../cli/wrangler")>()),
  wrangler: vi.fn(),
}));
const recorder = vi.mocked(wrangler);

const ROOT = path.resolve(import.meta.dirname, "../..");
const POLICIES = path.join(ROOT, "policies");
const DB_UUID = "5c1e7d2a-0000-4000-8000-00000000d1d1";
const PRODUCTION_UUID = "5c1e7d2a-0000-4000-8000-0000000000e1";
const MIGRATIONS = path.join(ROOT, "migrations");

let work: string;
let snapshot: string;
/** What push's check reads back after writing the example policies' history (chunk rows, bytes). */
let history: HistoryReadBack;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-remote-d1-"));
  const checked = await checkPolicyDir(POLICIES);
  if (!checked.ok) throw new Error("the example policies do not check");
  snapshot = checked.text;
  history = historyReadBack(checked.snapshot);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** wrangler.toml's bindings (no ids), with an [env.production] of its own; `id` adds a database_id to the top-level DB. */
async function writeConfig({ id, production = true }: { id?: string; production?: boolean } = {}): Promise<string> {
  const file = path.join(await mkdtemp(path.join(work, "config-")), "wrangler.toml");
  await writeFile(
    file,
    `name = "gatepass"\nmain = ${JSON.stringify(path.join(ROOT, "src/index.ts"))}\ncompatibility_date = "2026-04-01"\n\n` +
      `[[kv_namespaces]]\nbinding = "JWKS"\n\n[[kv_namespaces]]\nbinding = "POLICIES"\n\n` +
      `[[d1_databases]]\nbinding = "DB"\ndatabase_name = "gatepass"\n${id ? `database_id = "${id}"\n` : ""}migrations_dir = "../migrations-elsewhere"\n\n` +
      (production
        ? `[[env.production.kv_namespaces]]\nbinding = "JWKS"\n\n[[env.production.kv_namespaces]]\nbinding = "POLICIES"\n\n` +
          `[[env.production.d1_databases]]\nbinding = "DB"\ndatabase_name = "gatepass-production"\nmigrations_dir = ${JSON.stringify(MIGRATIONS)}\n`
        : ""),
  );
  return file;
}

interface Call {
  args: string[];
  /** The --config file's content at the time of the call, when it is JSON (the copy carrying the id). */
  copy?: Record<string, unknown>;
}

let databases: Map<string, string>;
let failing: ((args: string[]) => boolean) | undefined;
let calls: Call[];
let stdout: string;
let stderr: string;

const head = (call: Call) => call.args.slice(0, call.args[0] === "kv" ? 3 : 2).join(" ");
const flagValue = (call: Call, flag: string) =>
  call.args.includes(flag) ? call.args[call.args.indexOf(flag) + 1] : undefined;

beforeEach(() => {
  databases = new Map([
    ["gatepass", DB_UUID],
    ["gatepass-production", PRODUCTION_UUID],
  ]);
  failing = undefined;
  calls = [];
  stdout = "";
  stderr = "";
  recorder.mockImplementation(async (args) => {
    const call: Call = { args: [...args] };
    const config = call.args.includes("--config") ? flagValue(call, "--config")! : undefined;
    if (config?.endsWith(".json")) call.copy = JSON.parse(await readFile(config, "utf8")) as Record<string, unknown>;
    calls.push(call);
    if (failing?.(args))
      throw new Error(
        "wrangler d1 execute DB failed (exit 1):\n✘ [ERROR] A request to the Cloudflare API failed: Authentication error [code: 10000]",
      );
    const [group, command] = args;
    if (group === "d1" && command === "list")
      return JSON.stringify([
        { uuid: "00000000-0000-4000-8000-000000000000", name: "other" },
        ...[...databases].map(([name, uuid]) => ({ uuid, name })),
      ]);
    if (group === "d1" && command === "execute") {
      if (!args.includes("--json")) return "🚣 executed";
      const sql = flagValue(call, "--command")!;
      // The policy write lease is free, and stays this attempt's (its id is the first 24-hex-digit literal).
      const attempt = /'([0-9a-f]{24})'/.exec(sql)?.[1];
      if (sql.includes("INTO policy_push_lease"))
        return JSON.stringify([{ results: [] }, { results: [] }, { results: [{ holder: attempt, held_by: "ops" }] }]);
      if (sql.includes("UPDATE policy_push_lease")) return JSON.stringify([{ results: [{ holder: attempt }] }]);
      if (sql.includes("RETURNING attempt"))
        return JSON.stringify([{ results: [] }, { results: [] }, { results: [{ attempt }] }, { results: [] }]);
      const results = sql.includes("count(c.seq)")
        ? [history]
        : sql.startsWith("SELECT version,")
          ? [
              {
                version: "a".repeat(64),
                source_digest: "b".repeat(64),
                pushed_by: "ops",
                pushed_at: "2026-11-24T10:00:00.000Z",
                active: 1,
              },
            ]
          : [];
      return JSON.stringify([{ results }]);
    }
    if (group === "kv" && command === "key" && args[2] === "get") return `${snapshot}\n`;
    if (group === "kv" && command === "key" && args[2] === "put") return "Writing the value";
    if (group === "kv" && command === "bulk" && args[2] === "put") return "Success!";
    if (group === "kv" && command === "key" && args[2] === "list") return "[]";
    throw new Error(`unexpected wrangler ${args.join(" ")}`);
  });
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => ((stderr += String(chunk)), true));
});
afterEach(() => {
  vi.restoreAllMocks();
  recorder.mockReset();
});

/** Every D1 command ran against the one copy, which carries the database's id, and which is gone now. */
async function expectD1ThroughRemovedCopy(database: {
  name: string;
  uuid: string;
  worker: string;
  migrations: string;
}): Promise<void> {
  const d1 = calls.filter((call) => head(call) === "d1 execute");
  expect(d1.length).toBeGreaterThan(0);
  const copies = new Set(d1.map((call) => flagValue(call, "--config")));
  expect(copies.size).toBe(1);
  for (const call of d1) {
    expect(call.args).toContain("--remote");
    expect(call.args).not.toContain("--env"); // the copy is already that environment's
    expect(call.copy).toEqual({
      name: database.worker,
      compatibility_date: "2026-04-01",
      kv_namespaces: [{ binding: "JWKS" }, { binding: "POLICIES" }],
      d1_databases: [
        {
          binding: "DB",
          database_name: database.name,
          database_id: database.uuid,
          migrations_dir: database.migrations,
        },
      ],
    });
  }
  await expect(stat(path.dirname([...copies][0]!))).rejects.toMatchObject({ code: "ENOENT" });
}

describe("--remote D1 commands with a config whose database has no id", () => {
  it("policies push: one d1 list, then its D1 commands through a copy carrying the id; KV through the operator's config", async () => {
    const config = await writeConfig();
    expect(await policies(["push", "--remote", "--config", config, "--dir", POLICIES, "--by", "ops"])).toBe(0);
    // One d1 list, then the push's write protocol (docs/storage.md, "Write protocol"): the attempt logged
    // and the lease taken; history rows, read back; payload chunks; the active version and fallbacks
    // read (here also `active` from KV: this account's history holds no stored header yet, as after an
    // upgrade), the lease renewed; `fallbacks`, `active`; the compare-and-swap; the clean-up; the lease released.
    expect(calls.map(head)).toEqual([
      "d1 list",
      "d1 execute",
      "d1 execute",
      "d1 execute",
      "kv bulk put",
      "d1 execute",
      "kv key get",
      "d1 execute",
      "kv key put",
      "kv key put",
      "d1 execute",
      "kv key list",
      "d1 execute",
    ]);
    expect(calls[0]!.args).toEqual(["d1", "list", "--json", "--config", config]);
    await expectD1ThroughRemovedCopy({
      name: "gatepass",
      uuid: DB_UUID,
      worker: "gatepass",
      migrations: path.resolve(path.dirname(config), "../migrations-elsewhere"),
    });
    for (const call of calls.filter((c) => c.args[0] === "kv"))
      expect(call.args.slice(-3)).toEqual(["--remote", "--config", config]);
    expect(stdout).toMatch(/\npushed policy version [0-9a-f]{64} \(remote\) by ops\n$/);
  });

  it("audit query: one d1 list, then the query through the copy", async () => {
    const config = await writeConfig();
    expect(await audit(["query", "--decision", "deny", "--remote", "--config", config])).toBe(0);
    expect(calls.map(head)).toEqual(["d1 list", "d1 execute"]);
    await expectD1ThroughRemovedCopy({
      name: "gatepass",
      uuid: DB_UUID,
      worker: "gatepass",
      migrations: path.resolve(path.dirname(config), "../migrations-elsewhere"),
    });
  });

  it("policies history and jwks credential create|list: the same (create reads the live policy from KV with the operator's config)", async () => {
    const config = await writeConfig();
    const migrations = path.resolve(path.dirname(config), "../migrations-elsewhere");
    expect(await policies(["history", "--remote", "--config", config])).toBe(0);
    expect(calls.map(head)).toEqual(["d1 list", "d1 execute"]);
    await expectD1ThroughRemovedCopy({ name: "gatepass", uuid: DB_UUID, worker: "gatepass", migrations });

    calls = [];
    expect(
      await jwks(["credential", "create", "--issuer", "local-gitlab", "--by", "ops", "--remote", "--config", config]),
    ).toBe(0);
    expect(calls.map(head)).toEqual(["kv key get", "d1 list", "d1 execute"]);
    expect(calls[0]!.args.slice(-3)).toEqual(["--remote", "--config", config]);
    await expectD1ThroughRemovedCopy({ name: "gatepass", uuid: DB_UUID, worker: "gatepass", migrations });

    calls = [];
    expect(await jwks(["credential", "list", "--remote", "--config", config])).toBe(0);
    expect(calls.map(head)).toEqual(["d1 list", "d1 execute"]);
    await expectD1ThroughRemovedCopy({ name: "gatepass", uuid: DB_UUID, worker: "gatepass", migrations });
  });

  it("with --env, finds that environment's database and copies that environment's Worker", async () => {
    const config = await writeConfig();
    expect(await audit(["query", "--remote", "--env", "production", "--config", config])).toBe(0);
    expect(calls[0]!.args).toEqual(["d1", "list", "--json", "--env", "production", "--config", config]);
    await expectD1ThroughRemovedCopy({
      name: "gatepass-production",
      uuid: PRODUCTION_UUID,
      worker: "gatepass-production",
      migrations: MIGRATIONS,
    });
  });

  it("removes the copy when a D1 command fails", async () => {
    const config = await writeConfig();
    failing = (args) => args[0] === "d1" && args[1] === "execute";
    await expect(policies(["history", "--remote", "--config", config])).rejects.toThrow("Authentication error");
    expect(calls.map(head)).toEqual(["d1 list", "d1 execute"]);
    await expectD1ThroughRemovedCopy({
      name: "gatepass",
      uuid: DB_UUID,
      worker: "gatepass",
      migrations: path.resolve(path.dirname(config), "../migrations-elsewhere"),
    });
  });

  it("audit tail: Ctrl-C ends it normally, and the copy is removed", async () => {
    const config = await writeConfig();
    const before = process.listeners("SIGINT");
    const tail = audit(["tail", "--remote", "--config", config]);
    await vi.waitFor(() => expect(calls.map(head)).toEqual(["d1 list", "d1 execute"]));
    // The tail's own handler, as the signal would call it (emitting SIGINT would reach the test runner's too).
    const handlers = process.listeners("SIGINT").filter((listener) => !before.includes(listener));
    expect(handlers).toHaveLength(1);
    handlers[0]!("SIGINT");
    expect(await tail).toBe(0);
    await expectD1ThroughRemovedCopy({
      name: "gatepass",
      uuid: DB_UUID,
      worker: "gatepass",
      migrations: path.resolve(path.dirname(config), "../migrations-elsewhere"),
    });
    expect(process.listeners("SIGINT")).toEqual(before);
  });

  it("a database the account lacks is an error naming gatepass deploy, and nothing else runs (only deploy creates it)", async () => {
    const config = await writeConfig();
    databases.delete("gatepass");
    await expect(audit(["query", "--remote", "--config", config])).rejects.toThrow(
      `the account has no D1 database named gatepass (database_name of the DB binding in ${config}): run \`npx gatepass deploy\` first, which creates it`,
    );
    databases.delete("gatepass-production");
    await expect(
      policies(["push", "--remote", "--env", "production", "--config", config, "--dir", POLICIES]),
    ).rejects.toThrow("run `npx gatepass deploy --env production` first");
    expect(calls.map(head)).toEqual(["d1 list", "d1 list"]);
  });

  it("an --env the config has no section for is refused before any lookup (wrangler would use the top level's database)", async () => {
    // wrangler itself refuses it when the config has other environments; without any, only warns.
    const withOthers = await writeConfig();
    await expect(audit(["query", "--remote", "--env", "staging", "--config", withOthers])).rejects.toThrow(
      'No environment found in configuration with name "staging"',
    );
    const withNone = await writeConfig({ production: false });
    await expect(audit(["query", "--remote", "--env", "staging", "--config", withNone])).rejects.toThrow(
      `${withNone} has no [env.staging] section`,
    );
    expect(calls).toEqual([]);
  });
});

describe("--remote D1 commands that need no lookup", () => {
  it("a config with database_id: no d1 list, the config itself, as before", async () => {
    const config = await writeConfig({ id: DB_UUID });
    expect(await policies(["history", "--remote", "--config", config])).toBe(0);
    expect(await audit(["query", "--remote", "--config", config])).toBe(0);
    expect(calls.map((call) => call.args.slice(0, 2).concat(call.args.slice(-3)))).toEqual([
      ["d1", "execute", "--remote", "--config", config],
      ["d1", "execute", "--remote", "--config", config],
    ]);
  });

  it("--local: no lookup", async () => {
    const config = await writeConfig();
    const persist = path.join(work, "state");
    // A local database to act on (cli/local-state.ts refuses a state directory without one); wrangler is this file's stand-in.
    const d1 = path.join(persist, "v3", "d1", "miniflare-D1DatabaseObject");
    await mkdir(d1, { recursive: true });
    await writeFile(path.join(d1, "db.sqlite"), "");
    expect(await audit(["query", "--local", "--persist-to", persist, "--config", config])).toBe(0);
    expect(calls.map((call) => call.args)).toEqual([
      expect.arrayContaining(["d1", "execute", "--local", "--persist-to", persist, "--config", config]),
    ]);
  });
});

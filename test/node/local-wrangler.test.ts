// The CLI's in-process local storage (cli/local-storage.ts, reached through cli/wrangler.ts's
// runWrangler) against wrangler itself: every kind of command the CLI sends, through both, on two
// copies of the same migrated state. They must print the same, fail alike, and leave state that real
// wrangler reads back the same, so `--local` acts as wrangler's `--local` would.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeLocalStorage, runWrangler, spawnWrangler } from "../../cli/wrangler";
import { copyMigratedState } from "../support/wrangler-dev";

const ROOT = path.resolve(import.meta.dirname, "../..");

let work: string;
const state = { real: "", standIn: "" }; // standIn: the in-process side
type Side = keyof typeof state;
const run = (side: Side, args: string[]) =>
  (side === "real" ? spawnWrangler : runWrangler)([...args, "--local", "--persist-to", state[side]], { cwd: ROOT });
/** The same command through both; their results, side by side. */
const both = async (args: string[]) => ({ real: await run("real", args), standIn: await run("standIn", args) });

async function file(name: string, content: string): Promise<string> {
  const at = path.join(work, name);
  await writeFile(at, content);
  return at;
}

/** d1 execute --json output without the one field that differs run to run. */
const withoutDurations = (stdout: string) =>
  (JSON.parse(stdout) as { meta: unknown }[]).map(({ meta: _, ...rest }) => rest);

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-local-wrangler-"));
  state.real = path.join(work, "real");
  state.standIn = path.join(work, "stand-in");
  await copyMigratedState(state.real);
  await copyMigratedState(state.standIn);
});
afterAll(async () => {
  await closeLocalStorage();
  await rm(work, { recursive: true, force: true });
});

describe("the in-process local storage, command by command against wrangler", () => {
  it("kv: bulk put, key put from a file, key get (text, and a missing key), list by prefix, bulk delete", async () => {
    const pairs = await file(
      "pairs.json",
      JSON.stringify([
        { key: "snapshot:a:0", value: "chunk é0" },
        { key: "snapshot:a:1", value: "chunk 1" },
        { key: "other", value: "x" },
      ]),
    );
    for (const result of Object.values(await both(["kv", "bulk", "put", pairs, "--binding", "POLICIES"])))
      expect(result.code).toBe(0);
    const header = await file("active.txt", '{"format":2}\nsecond line');
    for (const result of Object.values(
      await both(["kv", "key", "put", "active", "--binding", "POLICIES", "--path", header]),
    ))
      expect(result.code).toBe(0);
    const keys = await file("keys.json", JSON.stringify([{ key: "k", value: "v" }]));
    await both(["kv", "bulk", "put", keys, "--binding", "JWKS"]);

    const got = await both(["kv", "key", "get", "active", "--binding", "POLICIES", "--text"]);
    expect(got.standIn).toEqual(got.real);
    expect(got.real.stdout).toBe('{"format":2}\nsecond line\n');
    const missing = await both(["kv", "key", "get", "nothing", "--binding", "POLICIES", "--text"]);
    expect(missing.standIn).toEqual(missing.real);
    expect(missing.real).toMatchObject({ code: 0, stdout: "Value not found\n" });

    const listed = await both(["kv", "key", "list", "--binding", "POLICIES", "--prefix", "snapshot:"]);
    expect(listed.standIn).toEqual(listed.real);
    expect(JSON.parse(listed.real.stdout)).toEqual([{ name: "snapshot:a:0" }, { name: "snapshot:a:1" }]);

    const unused = await file("unused.json", JSON.stringify(["snapshot:a:1"]));
    for (const result of Object.values(
      await both(["kv", "bulk", "delete", unused, "--force", "--binding", "POLICIES"]),
    ))
      expect(result.code).toBe(0);
    const after = await both(["kv", "key", "list", "--binding", "POLICIES"]);
    expect(after.standIn).toEqual(after.real);
    expect(JSON.parse(after.real.stdout).map((k: { name: string }) => k.name)).toEqual([
      "active",
      "other",
      "snapshot:a:0",
    ]);
  });

  it("kv key put --ttl: the key lists with an expiration on both", async () => {
    const value = await file("jwks.json", '{"keys":[]}');
    for (const result of Object.values(
      await both(["kv", "key", "put", "jwks:private", "--binding", "JWKS", "--path", value, "--ttl", "3600"]),
    ))
      expect(result.code).toBe(0);
    const listed = await both(["kv", "key", "list", "--binding", "JWKS", "--prefix", "jwks:"]);
    for (const { stdout } of Object.values(listed)) {
      const [entry] = JSON.parse(stdout) as { name: string; expiration: number }[];
      expect(entry!.name).toBe("jwks:private");
      expect(entry!.expiration - Date.now() / 1000).toBeGreaterThan(3500);
    }
  });

  it("d1 execute --file: statements split as wrangler splits them (quotes, semicolons, comments, a trigger), in one batch", async () => {
    const sql = await file(
      "statements.sql",
      "-- a comment; with a semicolon\nINSERT INTO policy_versions (version, source_digest, snapshot, pushed_by, pushed_at, active) VALUES ('v1', 'd', 'it''s; DROP TABLE x; -- é', 'o''brien', '2026-12-05T00:00:00Z', 1);\n" +
        "CREATE TRIGGER refuse_versions BEFORE INSERT ON policy_versions BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;\n",
    );
    for (const result of Object.values(await both(["d1", "execute", "DB", "--file", sql, "--yes"])))
      expect(result.code).toBe(0);
    const rows = await both([
      "d1",
      "execute",
      "DB",
      "--json",
      "--command",
      "SELECT version, snapshot, pushed_by FROM policy_versions; SELECT count(*) AS n FROM policy_versions",
    ]);
    expect(withoutDurations(rows.standIn.stdout)).toEqual(withoutDurations(rows.real.stdout));
    expect(withoutDurations(rows.real.stdout)).toEqual([
      { results: [{ version: "v1", snapshot: "it's; DROP TABLE x; -- é", pushed_by: "o'brien" }], success: true },
      { results: [{ n: 1 }], success: true },
    ]);
  });

  it("d1 execute: a statement that fails fails the command and undoes the batch's earlier statements", async () => {
    const sql = await file(
      "refused.sql",
      "UPDATE policy_versions SET active = 0;\nINSERT INTO policy_versions (version, source_digest, snapshot, pushed_by, pushed_at, active) VALUES ('v2', 'd', 's', 'b', 'a', 1);\n",
    );
    const refused = await both(["d1", "execute", "DB", "--file", sql, "--yes"]);
    const json = await both([
      "d1",
      "execute",
      "DB",
      "--json",
      "--command",
      "INSERT INTO policy_versions (version, source_digest, snapshot, pushed_by, pushed_at, active) VALUES ('v3', 'd', 's', 'b', 'a', 1)",
    ]);
    for (const result of [...Object.values(refused), ...Object.values(json)]) {
      expect(result.code).toBe(1);
      expect(result.stdout + result.stderr).toContain("refused by the test");
    }
    const rows = await both([
      "d1",
      "execute",
      "DB",
      "--json",
      "--command",
      "SELECT version, active FROM policy_versions",
    ]);
    expect(withoutDurations(rows.standIn.stdout)).toEqual(withoutDurations(rows.real.stdout));
    expect(withoutDurations(rows.real.stdout)).toEqual([{ results: [{ version: "v1", active: 1 }], success: true }]);
  });

  it("d1 execute --command: the policy write lease's conditional upsert, unixepoch() and RETURNING, several statements in one", async () => {
    const take = (holder: string) =>
      `INSERT INTO policy_push_lease (id, holder, held_by, expires_at) VALUES (1, '${holder}', 'x', unixepoch() + 300) ` +
      `ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, held_by = excluded.held_by, expires_at = excluded.expires_at WHERE policy_push_lease.expires_at <= unixepoch(); ` +
      `SELECT holder FROM policy_push_lease WHERE id = 1`;
    for (const [holder, expected] of [
      ["a", "a"],
      ["b", "a"],
    ] as const) {
      const taken = await both(["d1", "execute", "DB", "--json", "--command", take(holder)]);
      expect(withoutDurations(taken.standIn.stdout)).toEqual(withoutDurations(taken.real.stdout));
      expect(withoutDurations(taken.real.stdout)).toEqual([
        { results: [], success: true },
        { results: [{ holder: expected }], success: true },
      ]);
    }
    const renewed = await both([
      "d1",
      "execute",
      "DB",
      "--json",
      "--command",
      "UPDATE policy_push_lease SET expires_at = unixepoch() + 300 WHERE id = 1 AND holder IN ('a', 'b') RETURNING holder",
    ]);
    expect(withoutDurations(renewed.standIn.stdout)).toEqual(withoutDurations(renewed.real.stdout));
    expect(withoutDurations(renewed.real.stdout)).toEqual([{ results: [{ holder: "a" }], success: true }]);
  });

  it("leaves state wrangler reads back as it reads its own", async () => {
    await closeLocalStorage();
    const read = (args: string[]) =>
      Promise.all(
        (["real", "standIn"] as const).map((side) =>
          spawnWrangler([...args, "--local", "--persist-to", state[side]], { cwd: ROOT }),
        ),
      );
    const [kvReal, kvStandIn] = await read(["kv", "key", "get", "active", "--binding", "POLICIES", "--text"]);
    expect(kvStandIn).toEqual(kvReal);
    const [d1Real, d1StandIn] = await read([
      "d1",
      "execute",
      "DB",
      "--json",
      "--command",
      "SELECT version, snapshot, pushed_by, active FROM policy_versions",
    ]);
    expect(withoutDurations(d1StandIn!.stdout)).toEqual(withoutDurations(d1Real!.stdout));
    expect(withoutDurations(d1Real!.stdout)[0]).toMatchObject({ results: [{ version: "v1" }] });
  });

  it("refuses what it does not do, rather than pretend: an unknown flag, a command it does not answer", async () => {
    for (const args of [
      ["kv", "key", "get", "active", "--binding", "POLICIES", "--text", "--preview"],
      ["kv", "namespace", "list"],
    ]) {
      const result = await runWrangler([...args, "--local", "--persist-to", state.standIn], { cwd: ROOT });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^local storage: /);
    }
  });

  it("without --persist-to, uses the state directory wrangler uses: .wrangler/state beside the config", async () => {
    const project = path.join(work, "project");
    await copyMigratedState(path.join(project, ".wrangler", "state"));
    await writeFile(path.join(project, "wrangler.toml"), await readFile(path.join(ROOT, "wrangler.toml"), "utf8"));
    const value = await file("default-state.txt", "in the default state");
    const put = await runWrangler(["kv", "key", "put", "where", "--binding", "POLICIES", "--path", value, "--local"], {
      cwd: project,
    });
    expect(put.code).toBe(0);
    await closeLocalStorage();
    const got = await spawnWrangler(["kv", "key", "get", "where", "--binding", "POLICIES", "--text", "--local"], {
      cwd: project,
    });
    expect(got).toMatchObject({ code: 0, stdout: "in the default state\n" });
  });
});

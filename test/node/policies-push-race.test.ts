// Concurrent `policies push` and `rollback` runs against one state directory (issue 30): D1's write
// lease serialises them, so whatever order they take it in, one version ends active, its chunks are
// in KV, a fresh PolicyStore (what a cold isolate runs) serves it, and policy_pushes tells what became
// of each run. In process, with wrangler's local commands answered by the stand-in (one Miniflare per
// state directory, as real wrangler shares one SQLite file and KV store).
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/run";
import { closeLocalStorage, wrangler } from "../../cli/wrangler";
import type { Env } from "../../src/config";
import { readStoredHeader } from "../../src/policy/load-snapshot";
import { payloadChunkKey, PolicyStore } from "../../src/policy/active-policy";
import { copyMigratedState } from "../support/wrangler-dev";

const ROOT = path.resolve(__dirname, "../..");
const PUSHERS = 5;
const ROUNDS = 3;

let work: string;
let persist: string;
const storage = () => ["--local", "--persist-to", persist];

async function sql<T>(command: string): Promise<T[]> {
  const out = await wrangler(["d1", "execute", "DB", "--json", "--command", command, ...storage()], { cwd: ROOT });
  return (JSON.parse(out) as { results: T[] }[]).flatMap((r) => r.results);
}

async function kvGet(key: string): Promise<string | null> {
  const out = (
    await wrangler(["kv", "key", "get", key, "--binding", "POLICIES", "--text", ...storage()], { cwd: ROOT })
  ).replace(/\n$/, "");
  return out === "Value not found" ? null : out;
}

/** A fresh PolicyStore (a cold isolate) reading the same KV through wrangler. */
async function coldIsolateVersion(): Promise<string> {
  const POLICIES = {
    get: async (key: string, type?: string) => {
      const value = await kvGet(key);
      return value === null ? null : type === "arrayBuffer" ? new TextEncoder().encode(value).buffer : value;
    },
  };
  const store = new PolicyStore({ fetch: () => Promise.reject(new Error("no network")), now: () => 0 });
  const policy = await store.current({ POLICIES } as unknown as Env, () => undefined);
  expect(store.servingFallbackFrom).toBeUndefined();
  return policy.version;
}

/** A copy of the example policies whose version is its own (a target description names it). */
async function policyDir(name: string): Promise<string> {
  const dir = path.join(work, name);
  await cp(path.join(ROOT, "policies"), dir, { recursive: true });
  const targets = await readFile(path.join(dir, "targets.yaml"), "utf8");
  await writeFile(
    path.join(dir, "targets.yaml"),
    targets.replace("Read-only access to the shared AWS account.", `pushed by ${name}`),
  );
  return dir;
}

/** Runs several CLI commands at once in this process; their output goes to one sink (they share process.stdout). */
async function concurrently(commands: string[][]): Promise<{ codes: number[]; output: string }> {
  let output = "";
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  const sink = ((chunk: string | Uint8Array) => ((output += String(chunk)), true)) as typeof process.stdout.write;
  process.stdout.write = sink;
  process.stderr.write = sink;
  try {
    return { codes: await Promise.all(commands.map((args) => runCli(args))), output };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}

interface Attempt {
  seq: number;
  action: string;
  version: string;
  pushed_by: string;
  outcome: string;
  activation: number | null;
  replaced: string | null;
}

let first: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-push-race-"));
  persist = path.join(work, "state");
  await copyMigratedState(persist);
  const { codes } = await concurrently([["policies", "push", ...storage(), "--by", "first"]]);
  expect(codes).toEqual([0]);
  first = (await sql<{ version: string }>("SELECT version FROM policy_versions WHERE active = 1"))[0]!.version;
});

afterAll(async () => {
  await closeLocalStorage();
  await rm(work, { recursive: true, force: true });
});

describe("concurrent pushes and rollbacks", () => {
  it(
    `${PUSHERS} pushes (and a rollback) at once, ${ROUNDS} rounds: one version active, whole, served, and every run in history`,
    { timeout: 120_000 },
    async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const { before } = (
          await sql<{ before: number }>("SELECT coalesce(max(seq), 0) AS before FROM policy_pushes")
        )[0]!;
        const { previous } = (
          await sql<{ previous: string }>("SELECT version AS previous FROM policy_versions WHERE active = 1")
        )[0]!;
        const dirs = await Promise.all(
          Array.from({ length: PUSHERS }, (_, i) => policyDir(`round-${round}-pusher-${i}`)),
        );
        const commands = dirs.map((dir, i) => ["policies", "push", "--dir", dir, ...storage(), "--by", `pusher-${i}`]);
        // From the second round on, a rollback to the first version races the pushes.
        if (round > 0)
          commands.splice(round, 0, ["policies", "rollback", first.slice(0, 16), ...storage(), "--by", "rollback"]);
        const { codes, output } = await concurrently(commands);
        expect(codes, output).toEqual(commands.map(() => 0));

        // History: every run of the round activated, in a chain of replacements ending at the active version.
        const attempts = await sql<Attempt>(
          `SELECT seq, action, version, pushed_by, outcome, activation, replaced FROM policy_pushes WHERE seq > ${before} ORDER BY activation`,
        );
        expect(attempts.map((a) => a.pushed_by).sort()).toEqual(commands.map((c) => c[c.indexOf("--by") + 1]!).sort());
        expect(attempts.every((a) => a.outcome === "activated")).toBe(true);
        attempts.forEach((attempt, i) => expect(attempt.replaced).toBe(i === 0 ? previous : attempts[i - 1]!.version));
        const last = attempts.at(-1)!.version;

        // D1: one active row, the last activation's; the lease released.
        expect(await sql<{ version: string }>("SELECT version FROM policy_versions WHERE active = 1")).toEqual([
          { version: last },
        ]);
        expect(await sql("SELECT holder FROM policy_push_lease")).toEqual([]);

        // KV: `active` names it, all its chunks are there, and a cold isolate serves it.
        const header = readStoredHeader((await kvGet("active"))!);
        expect(header.version).toBe(last);
        for (let i = 0; i < header.chunks; i++) expect(await kvGet(payloadChunkKey(header, i))).not.toBeNull();
        expect(await coldIsolateVersion()).toBe(last);

        // `fallbacks` names earlier activations whose chunks are all there too.
        const fallbacks = JSON.parse((await kvGet("fallbacks"))!) as string[];
        expect(fallbacks.length).toBeGreaterThan(0);
        for (const text of fallbacks) {
          const fallback = readStoredHeader(text);
          expect(fallback.version).not.toBe(last);
          for (let i = 0; i < fallback.chunks; i++) expect(await kvGet(payloadChunkKey(fallback, i))).not.toBeNull();
        }
      }
    },
  );
});

describe("the write lease", () => {
  it("refuses a push while another holds the lease (exit 3, nothing changed, recorded busy), and takes a lapsed one", async () => {
    const { active } = (
      await sql<{ active: string }>("SELECT version AS active FROM policy_versions WHERE active = 1")
    )[0]!;
    const activeHeader = await kvGet("active");
    const dir = await policyDir("while-leased");
    // Another pusher in the middle of its write.
    await sql(
      "INSERT INTO policy_push_lease (id, holder, held_by, expires_at) VALUES (1, 'other-attempt', 'ci-job-7', unixepoch() + 300)",
    );
    const refused = await concurrently([
      ["policies", "push", "--dir", dir, ...storage(), "--by", "second", "--wait", "0"],
    ]);
    expect(refused.codes).toEqual([3]);
    expect(refused.output).toContain(
      "push refused: another policy push or rollback (by ci-job-7) was still running after 0 s; nothing was changed.",
    );
    expect(await kvGet("active")).toBe(activeHeader);
    expect(await sql("SELECT version FROM policy_versions WHERE active = 1")).toEqual([{ version: active }]);
    const [busy] = await sql<Attempt & { detail: string }>(
      "SELECT outcome, pushed_by, detail FROM policy_pushes ORDER BY seq DESC LIMIT 1",
    );
    expect(busy).toMatchObject({ outcome: "busy", pushed_by: "second" });

    // That pusher died: once its lease lapses, the next push takes it.
    await sql("UPDATE policy_push_lease SET expires_at = unixepoch() - 1");
    const taken = await concurrently([
      ["policies", "push", "--dir", dir, ...storage(), "--by", "third", "--wait", "0"],
    ]);
    expect(taken.codes, taken.output).toEqual([0]);
    const { version } = (await sql<{ version: string }>("SELECT version FROM policy_versions WHERE active = 1"))[0]!;
    expect(version).not.toBe(active);
    expect(await coldIsolateVersion()).toBe(version);

    const history = await concurrently([["policies", "history", "--attempts", "--limit", "2", ...storage()]]);
    expect(history.codes).toEqual([0]);
    const lines = history.output.trim().split("\n");
    expect(lines[0]).toMatch(new RegExp(`^#\\d+ push ${version}  third  activated  replaced ${active.slice(0, 12)}$`));
    expect(lines[1]).toMatch(
      /^#\d+ push [0-9a-f]{64}  second  busy  \(another policy push or rollback \(by ci-job-7\) was still running after 0 s\)$/,
    );
  });
});

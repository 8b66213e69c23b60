// Clear first steps: a storage command run before local state exists says in one line what to run
// first, and writes nothing; every bad option value is a usage error (exit 2) that names the option.
// In process, with --local storage answered in process as the product answers it (cli/local-storage.ts).
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeLocalStorage } from "../../cli/wrangler";
import { gatepassInProcess } from "../support/cli";

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-first-steps-"));
});

afterAll(async () => {
  await closeLocalStorage();
  await rm(work, { recursive: true, force: true });
});

const firstStep = (state: string) =>
  `gatepass: local storage in ${state} is not set up yet (no D1 database with gatepass's tables): run \`npx wrangler d1 migrations apply DB --local --persist-to ${state}\` first (\`npx gatepass dev\` does it when it starts)\n`;

describe("a storage command before any local state exists", () => {
  it.each([
    [["policies", "push", "--by", "test"]],
    [["policies", "history"]],
    [["policies", "rollback", "0123456789abcdef"]],
    [["audit", "query"]],
    [["jwks", "credential", "create", "--issuer", "private-gitlab"]],
    [["jwks", "credential", "list"]],
    [["jwks", "credential", "revoke", "gpk_0123456789abcdef"]],
  ])("gatepass %j says in one line what to run first, and creates nothing", async (args) => {
    const state = path.join(work, `fresh-${args.join("-")}`);
    const result = await gatepassInProcess(...args, "--local", "--persist-to", state);
    expect(result.code).toBe(1);
    expect(result.stderr.split("\n").filter((line) => line.startsWith("gatepass"))).toEqual([
      firstStep(state).trimEnd(),
    ]);
    expect(result.stderr.endsWith(firstStep(state))).toBe(true);
    expect(existsSync(state), "the state directory was created").toBe(false);
  });

  it("a database that exists without its tables (migrations never ran) gets the same line, not SQLite's", async () => {
    const state = path.join(work, "empty-database");
    const d1 = path.join(state, "v3", "d1", "miniflare-D1DatabaseObject");
    await mkdir(d1, { recursive: true });
    // The id wrangler and the stand-in give the DB binding of wrangler.toml; an empty file is an empty SQLite database.
    await writeFile(path.join(d1, "e7352547963de7050bd7d94658afc4fe78b61811b7815da12d90be8e863abf4d.sqlite"), "");
    const result = await gatepassInProcess("policies", "history", "--local", "--persist-to", state);
    expect(result).toEqual({ code: 1, stdout: "", stderr: firstStep(state) });
  }, 60_000);
});

describe("a bad option value", () => {
  it.each([
    [["dev", "--port", "abc"], "--port takes a port number from 1 to 65535, not 'abc'"],
    [["dev", "--port", "65536"], "--port takes a port number from 1 to 65535, not '65536'"],
    [["audit", "query", "--limit", "abc"], "--limit must be 1 to 500, not 'abc'"],
    [
      ["audit", "query", "--since", "yesterday"],
      "--since must be an ISO 8601 time, e.g. 2026-01-31T00:00:00Z, not 'yesterday'",
    ],
    [["policies", "history", "--limit", "5x"], "--limit is a number from 1 to 1000, not '5x'"],
    [
      ["jwks", "credential", "create", "--issuer", "x", "--expires", "5y"],
      "--expires takes a duration from 1h to 365d (e.g. 90d or 12h), got '5y'",
    ],
    [["dev", "token", "--ttl", "soon"], "--ttl takes a number of seconds (1 to 9999999), not 'soon'"],
    [["keys", "generate", "--alg", "XX256"], "--alg takes ES256 and/or RS256 (got XX256)"],
    [
      ["status", "--url", "ftp://example.com"],
      "--url must be an https URL (http only on loopback), got 'ftp://example.com'",
    ],
  ])("gatepass %j is a usage error naming the option, before anything runs", async (args, sentence) => {
    const result = await gatepassInProcess(...args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr.split("\n")[0]).toMatch(
      new RegExp(`^gatepass( [a-z]+)?: ${sentence.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`),
    );
  });
});

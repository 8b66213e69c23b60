// `gatepass audit query` as an operator runs it, against local D1 state in a temp --persist-to dir.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUDIT_COLUMNS } from "../../src/audit/event";
import { wrangler } from "../../cli/wrangler";

const CLI = path.resolve("cli/gatepass.mjs");
let state: string;

const run = (...args: string[]) => promisify(execFile)(process.execPath, [CLI, "audit", ...args, "--persist-to", state]);

beforeAll(async () => {
  state = await mkdtemp(path.join(tmpdir(), "gatepass-audit-"));
  await wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", state]);
  const row = (id: string, project: string, decision: string, code: string | null) =>
    `(${AUDIT_COLUMNS.map((c) =>
      ({ ts: `'2026-11-24T10:00:0${id}.000Z'`, request_id: `'req-${id}'`, route: "'POST /v1/credentials/:target'", project_path: `'${project}'`,
        target: "'reader'", decision: `'${decision}'`, error_code: code ? `'${code}'` : "NULL", status: decision === "allow" ? "200" : "403" })[c as string] ?? "NULL",
    ).join(", ")})`;
  await wrangler(["d1", "execute", "DB", "--local", "--persist-to", state, "--command",
    `INSERT INTO audit_events (${AUDIT_COLUMNS.join(", ")}) VALUES ${row("1", "platform/infra", "allow", null)}, ${row("2", "platform/infra", "deny", "policy_denied")}, ${row("3", "other/app", "deny", "policy_denied")};`]);
}, 120_000);

afterAll(async () => {
  await rm(state, { recursive: true, force: true });
});

describe("gatepass audit query", () => {
  it("prints matching events as JSON lines, oldest first", async () => {
    const { stdout } = await run("query", "--project", "platform/infra");
    const events = stdout.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.map((e) => e.request_id)).toEqual(["req-1", "req-2"]);
  });

  it("combines filters and quotes values as data", async () => {
    const { stdout } = await run("query", "--decision", "deny", "--project", "other/app");
    expect(stdout.trim().split("\n").map((line) => JSON.parse(line).request_id)).toEqual(["req-3"]);
    const injected = await run("query", "--project", "x' OR '1'='1");
    expect(injected.stdout).toBe("");
  });

  it("refuses a malformed filter before touching D1", async () => {
    await expect(run("query", "--decision", "maybe")).rejects.toMatchObject({ stderr: expect.stringContaining("decision must be allow, deny or error") });
  });
});

// `gatepass audit query|tail` as an operator runs them, against local D1 state in a temp --persist-to dir.
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
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

describe("gatepass audit tail", () => {
  it("prints every new matching event in order, even more than a page (500) between two polls", async () => {
    // Its own process group, so that stopping it also stops the wrangler of a poll under way (which
    // would otherwise write into the state directory after afterAll removed it).
    const tail = spawn(process.execPath, [CLI, "audit", "tail", "--decision", "deny", "--persist-to", state], { stdio: ["ignore", "pipe", "pipe"], detached: true });
    const exited = new Promise((resolve) => tail.once("exit", resolve));
    let stdout = "";
    let stderr = "";
    tail.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    tail.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const lines = () => stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line).request_id as string);
    const waitFor = async (count: number, ms: number) => {
      for (const deadline = Date.now() + ms; lines().length < count && tail.exitCode === null && Date.now() < deadline; ) {
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    try {
      await waitFor(2, 30_000);
      expect(lines(), stderr).toEqual(["req-2", "req-3"]);
      // 1 200 events in one statement (so they land between two polls), every other one a deny.
      const file = path.join(state, "burst.sql");
      await writeFile(file, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
        INSERT INTO audit_events (ts, request_id, route, project_path, target, decision, error_code, status)
        SELECT '2026-11-24T11:00:00.000Z', 'burst-' || i, 'POST /v1/credentials/:target', 'platform/infra', 'reader',
               CASE WHEN i % 2 = 0 THEN 'deny' ELSE 'allow' END, CASE WHEN i % 2 = 0 THEN 'policy_denied' END, CASE WHEN i % 2 = 0 THEN 403 ELSE 200 END
        FROM n;`);
      await wrangler(["d1", "execute", "DB", "--local", "--persist-to", state, "--file", file]);
      const expected = Array.from({ length: 600 }, (_, k) => `burst-${2 * (k + 1)}`);
      await waitFor(2 + expected.length, 30_000);
      // One more poll, to see that nothing is printed twice.
      await new Promise((r) => setTimeout(r, 5_000));
      expect(lines(), stderr).toEqual(["req-2", "req-3", ...expected]);
    } finally {
      process.kill(-tail.pid!, "SIGTERM");
      await exited;
    }
  }, 120_000);
});

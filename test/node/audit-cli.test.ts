// `gatepass audit query|tail` as an operator runs them, against local D1 state in a temp --persist-to
// dir. In process, with wrangler's local commands answered in process by cli/local-storage.ts, which
// test/node/local-wrangler.test.ts holds to wrangler's own behaviour.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUDIT_COLUMNS } from "../../src/audit/audit-event";
import { closeLocalStorage, wrangler } from "../../cli/wrangler";
import { gatepassInProcess, startInProcess } from "../support/cli";
import { copyMigratedState } from "../support/wrangler-dev";

let work: string;
let state: string;

const run = (...args: string[]) => gatepassInProcess("audit", ...args, "--persist-to", state);

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-audit-"));
  state = path.join(work, "state");
  await copyMigratedState(state);
  const row = (id: string, project: string, decision: string, code: string | null) =>
    `(${AUDIT_COLUMNS.map(
      (c) =>
        ({
          ts: `'2026-11-24T10:00:0${id}.000Z'`,
          request_id: `'req-${id}'`,
          route: "'POST /v1/credentials/:target'",
          project_path: `'${project}'`,
          target: "'reader'",
          decision: `'${decision}'`,
          error_code: code ? `'${code}'` : "NULL",
          status: decision === "allow" ? "200" : "403",
        })[c as string] ?? "NULL",
    ).join(", ")})`;
  await wrangler([
    "d1",
    "execute",
    "DB",
    "--local",
    "--persist-to",
    state,
    "--command",
    `INSERT INTO audit_events (${AUDIT_COLUMNS.join(", ")}) VALUES ${row("1", "platform/infra", "allow", null)}, ${row("2", "platform/infra", "deny", "policy_denied")}, ${row("3", "other/app", "deny", "policy_denied")};`,
  ]);
}, 120_000);

afterAll(async () => {
  await closeLocalStorage();
  await rm(work, { recursive: true, force: true });
});

describe("gatepass audit query", () => {
  it("prints matching events as JSON lines, oldest first", async () => {
    const { stdout } = await run("query", "--project", "platform/infra");
    const events = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.map((e) => e.request_id)).toEqual(["req-1", "req-2"]);
  });

  it("combines filters and quotes values as data", async () => {
    const { stdout } = await run("query", "--decision", "deny", "--project", "other/app");
    expect(
      stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).request_id),
    ).toEqual(["req-3"]);
    const injected = await run("query", "--project", "x' OR '1'='1");
    expect(injected.stdout).toBe("");
  });

  it("filters on the claimed (unverified) issuer of refused tokens", async () => {
    const refused = `(${AUDIT_COLUMNS.map((c) => ({ ts: "'2026-11-24T09:00:00.000Z'", request_id: "'req-claimed'", route: "'POST /v1/token'", decision: "'deny'", status: "401", error_code: "'key_unknown'", claimed_issuer: "'corp-gitlab'" })[c as string] ?? "NULL").join(", ")})`;
    await wrangler([
      "d1",
      "execute",
      "DB",
      "--local",
      "--persist-to",
      state,
      "--command",
      `INSERT INTO audit_events (${AUDIT_COLUMNS.join(", ")}) VALUES ${refused};`,
    ]);
    try {
      const { stdout } = await run("query", "--claimed-issuer", "corp-gitlab");
      expect(
        stdout
          .trim()
          .split("\n")
          .map((line) => JSON.parse(line)),
      ).toEqual([
        expect.objectContaining({
          request_id: "req-claimed",
          error_code: "key_unknown",
          claimed_issuer: "corp-gitlab",
          issuer: null,
        }),
      ]);
    } finally {
      // The tail tests below count this file's denials.
      await wrangler([
        "d1",
        "execute",
        "DB",
        "--local",
        "--persist-to",
        state,
        "--command",
        "DELETE FROM audit_events WHERE request_id = 'req-claimed';",
      ]);
    }
  });

  it("refuses a malformed filter before touching D1", async () => {
    const refused = await run("query", "--decision", "maybe");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe("gatepass: --decision must be allow, deny or error, not 'maybe'\n");
  });
});

describe("gatepass audit tail", () => {
  it("prints every new matching event in order, even more than a page (500) between two polls", async () => {
    const listening = new Set(process.listeners("SIGTERM"));
    const tail = startInProcess("audit", "tail", "--decision", "deny", "--persist-to", state);
    let ended = false;
    void tail.done.finally(() => (ended = true));
    const stdout = () => tail.output().stdout;
    const stderr = () => tail.output().stderr;
    const lines = () =>
      stdout()
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line).request_id as string);
    const waitFor = async (count: number, ms: number) => {
      for (const deadline = Date.now() + ms; lines().length < count && !ended && Date.now() < deadline;) {
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    try {
      await waitFor(2, 30_000);
      expect(lines(), stderr()).toEqual(["req-2", "req-3"]);
      // 1 200 events in one statement (so they land between two polls), every other one a deny.
      const file = path.join(state, "burst.sql");
      await writeFile(
        file,
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
        INSERT INTO audit_events (ts, request_id, route, project_path, target, decision, error_code, status)
        SELECT '2026-11-24T11:00:00.000Z', 'burst-' || i, 'POST /v1/credentials/:target', 'platform/infra', 'reader',
               CASE WHEN i % 2 = 0 THEN 'deny' ELSE 'allow' END, CASE WHEN i % 2 = 0 THEN 'policy_denied' END, CASE WHEN i % 2 = 0 THEN 403 ELSE 200 END
        FROM n;`,
      );
      await wrangler(["d1", "execute", "DB", "--local", "--persist-to", state, "--file", file]);
      const expected = Array.from({ length: 600 }, (_, k) => `burst-${2 * (k + 1)}`);
      await waitFor(2 + expected.length, 30_000);
      // One more poll, to see that nothing is printed twice.
      await new Promise((r) => setTimeout(r, 5_000));
      expect(lines(), stderr()).toEqual(["req-2", "req-3", ...expected]);
    } finally {
      // What a SIGTERM does: tail's own handler ends it as a normal return (Miniflare's own handler, in
      // this process for the local state, would end the test runner).
      for (const handler of process.listeners("SIGTERM")) if (!listening.has(handler)) handler("SIGTERM");
      expect((await tail.done).code).toBe(0);
    }
  }, 120_000);
});

// `gatepass status` as an operator runs it, against a scripted stand-in for gatepass on loopback: where
// the admin token comes from (never argv), which URLs it is sent to, and what is printed. Against a
// real Worker after a real push: test/node/jwks-push-template.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatepassProcess, type CliResult } from "../support/cli";

const dir = mkdtempSync(path.join(tmpdir(), "gatepass-status-"));
const NOW = Math.floor(Date.now() / 1000);

const STATUS = {
  policy: { version: "0123456789abcdef".repeat(4), created_at: "2026-11-24T00:00:00.000Z", last_error: null },
  issuers: [
    {
      name: "corp-gitlab",
      source: "pushed",
      fetched_at: NOW - 5400,
      fresh_until: NOW + 1e6,
      kids: ["k2"],
      last_error: null,
      age_seconds: 5400,
      pushed_by: "gpk_0123456789abcdef",
      retired: [{ kid: "k1", until: NOW + 600 }],
      stale: false,
    },
    {
      name: "lab-gitlab",
      source: "pushed",
      fetched_at: NOW - 3 * 86400,
      fresh_until: NOW + 1e6,
      kids: ["k9"],
      last_error: null,
      age_seconds: 3 * 86400 + 7200,
      pushed_by: "admin",
      retired: [],
      stale: true,
    },
    {
      name: "gitlab-com",
      source: "discovery",
      fetched_at: NOW - 120,
      fresh_until: NOW + 780,
      kids: ["a", "b"],
      last_error: "\u001b[31mred\u001b[0m",
      age_seconds: 120,
    },
  ],
  signing_keys: {
    keys: [{ kid: "es256-current-kid-long", alg: "ES256", status: "current", published: true }],
    targets_without_key: ["azure-deploy"],
  },
  audit: { write_failures_this_isolate: 0, last_failure: null },
  errors_last_hour: { policy_denied: 3 },
};

let server: Server;
let base: string;
const seen: { url: string; authorization?: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url!, authorization: req.headers.authorization });
    if (req.url === "/moved/v1/admin/status") return void res.writeHead(302, { Location: "/v1/admin/status" }).end();
    if (req.headers.authorization !== "Bearer the-admin-token") {
      return void res.writeHead(401, { "Content-Type": "application/json" }).end(
        JSON.stringify({
          error: "invalid_token",
          error_description: "Send the admin token.",
          code: "admin_unauthorized",
          request_id: "r",
        }),
      );
    }
    res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(STATUS));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

function status(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  // Only PATH: no GATEPASS_* from the developer's shell.
  return gatepassProcess(["status", ...args], { env: { PATH: process.env.PATH!, ...env } });
}

describe("gatepass status", () => {
  it("prints policy, each issuer (pushed: last push, by whom, age, retiring keys), signing keys and errors; warnings on stderr", async () => {
    seen.length = 0;
    const { code, stdout, stderr } = await status(["--url", `${base}/`], { GATEPASS_ADMIN_TOKEN: "the-admin-token" });
    expect(code).toBe(0);
    expect(seen).toEqual([{ url: "/v1/admin/status", authorization: "Bearer the-admin-token" }]);
    const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, "Z");
    expect(stdout.split("\n")).toEqual([
      `gatepass ${base}`,
      "policy      0123456789ab (created 2026-11-24T00:00:00.000Z)",
      "issuers",
      `  corp-gitlab  pushed  last push 1h 30m ago (${iso(NOW - 5400)}) by gpk_0123456789abcdef  kids: k2  retiring: k1 until ${iso(NOW + 600)}`,
      `  lab-gitlab  pushed  last push 3d 2h ago (${iso(NOW - 3 * 86400)}) by admin  STALE  kids: k9`,
      "  gitlab-com  discovery  fetched 2m ago  kids: a, b  last error: \\u001b[31mred\\u001b[0m",
      "signing     ES256 current es256-curren",
      "errors (1h) policy_denied 3",
      "",
    ]);
    expect(stderr).toBe(
      "warning: issuer lab-gitlab: keys last pushed 3d 2h ago; check the key push job (templates/jwks-push.gitlab-ci.yml) and its credential\n" +
        "warning: targets without a signing key (they answer signing_unavailable): azure-deploy\n",
    );
  });

  it("reads the token from --token-file (trailing newline ignored), before GATEPASS_ADMIN_TOKEN; --json prints the answer; GATEPASS_URL is the default URL", async () => {
    const file = path.join(dir, "admin-token");
    writeFileSync(file, "the-admin-token\n", { mode: 0o600 });
    const { code, stdout } = await status(["--token-file", file, "--json"], {
      GATEPASS_URL: base,
      GATEPASS_ADMIN_TOKEN: "wrong",
    });
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual(STATUS);
  });

  it("says what gatepass answered when it refuses, and exits 1", async () => {
    const { code, stdout, stderr } = await status(["--url", base], { GATEPASS_ADMIN_TOKEN: "not-it" });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toBe(`gatepass status: ${base} answered HTTP 401, admin_unauthorized: Send the admin token.\n`);
  });

  it("does not follow a redirect (the token would go along)", async () => {
    seen.length = 0;
    const { code, stderr } = await status(["--url", `${base}/moved`], { GATEPASS_ADMIN_TOKEN: "the-admin-token" });
    expect(code).toBe(1);
    expect(stderr).toContain("answered HTTP 302");
    expect(seen.map((r) => r.url)).toEqual(["/moved/v1/admin/status"]);
  });

  it.each([
    [
      "no token anywhere",
      ["--url", "http://127.0.0.1:9"],
      {},
      "give the admin token in GATEPASS_ADMIN_TOKEN or a file",
    ],
    [
      "an unreadable token file",
      ["--url", "http://127.0.0.1:9", "--token-file", "/nonexistent/token"],
      {},
      "cannot read --token-file",
    ],
    [
      "a token on the command line",
      ["--url", "http://127.0.0.1:9", "--token", "secret"],
      { GATEPASS_ADMIN_TOKEN: "t" },
      "Unknown option '--token'",
    ],
    ["no URL", [], { GATEPASS_ADMIN_TOKEN: "t" }, "give --url URL"],
    [
      "http:// off loopback",
      ["--url", "http://gatepass.example.com"],
      { GATEPASS_ADMIN_TOKEN: "t" },
      "--url must be an https URL",
    ],
  ])("refuses %s with a usage error (exit 2), sending nothing", async (_name, args, env, message) => {
    seen.length = 0;
    const { code, stderr } = await status(args, env);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(seen).toEqual([]);
  });
});

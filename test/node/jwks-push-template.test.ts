// The scheduled key push job (templates/jwks-push.gitlab-ci.yml): its YAML as GitLab reads it, and its
// script run by dash, as a runner would, against a real gatepass (`wrangler dev`, local KV/D1) with
// credentials made by the CLI, a stand-in GitLab serving its keys, and a `curl` on PATH that records
// its arguments (the credential must never be among them). Retries are checked against a scripted
// stand-in for gatepass. `gatepass status` then reads the push back from the running Worker. The
// admin's side (policy push, credentials) runs in process (local storage through Miniflare,
// cli/local-storage.ts) before the Worker starts on the same state.
import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { gatepassInProcess, type CliResult } from "../support/cli";
import { closeLocalStorage } from "../../cli/wrangler";
import { copyMigratedState, startWranglerDev, type WranglerDev } from "../support/wrangler-dev";
import { createTestKey, jwksOf, type TestKey } from "../support/tokens";


const ADMIN_TOKEN = "template-test-admin-token";
const TEMPLATE = parse(readFileSync(path.resolve("templates/jwks-push.gitlab-ci.yml"), "utf8")) as Record<string, Record<string, any>>;
const JOB = TEMPLATE["gatepass-jwks-push"]!;

const dir = mkdtempSync(path.join(tmpdir(), "gatepass-push-template-"));
const bin = path.join(dir, "bin");
const curlLog = path.join(dir, "curl-argv.log");
let gatepass: WranglerDev;
let gitlab: { server: Server; url: string; requests: number; answer: { status: number; body: string } };
let key: TestKey;
const credentials: Record<string, string> = {};

/** `gatepass ...` in process, as the admin who holds the admin token. */
function gatepassCli(...args: string[]): Promise<CliResult> {
  vi.stubEnv("GATEPASS_ADMIN_TOKEN", ADMIN_TOKEN);
  return gatepassInProcess(...args).finally(() => vi.unstubAllEnvs());
}

beforeAll(async () => {
  // A curl that writes down its arguments, then runs the real one.
  await mkdir(bin);
  const realCurl = (await promisify(execFile)("sh", ["-c", "command -v curl"])).stdout.trim();
  writeFileSync(path.join(bin, "curl"), `#!/bin/sh\nprintf '%s\\n' "$@" >> '${curlLog}'\nexec '${realCurl}' "$@"\n`);
  chmodSync(path.join(bin, "curl"), 0o755);

  key = await createTestKey();
  gitlab = { server: undefined as unknown as Server, url: "", requests: 0, answer: { status: 200, body: JSON.stringify(jwksOf(key)) } };
  gitlab.server = createServer((req, res) => {
    gitlab.requests++;
    if (req.url !== "/oauth/discovery/keys") return void res.writeHead(404).end();
    // Content-Length announced, as GitLab sends it: curl's --max-filesize refuses from that alone.
    res.writeHead(gitlab.answer.status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(gitlab.answer.body) }).end(gitlab.answer.body);
  });
  await new Promise<void>((resolve) => gitlab.server.listen(0, "127.0.0.1", resolve));
  gitlab.url = `http://127.0.0.1:${(gitlab.server.address() as AddressInfo).port}`;

  // The admin's side: a policy with two pushed issuers, pushed by the CLI; then gatepass itself.
  const state = path.join(dir, "state");
  const policies = path.join(dir, "policies");
  await mkdir(policies);
  await writeFile(path.join(policies, "issuers.yaml"), [
    "issuers:",
    "  - name: corp-gitlab",
    "    url: https://gitlab.corp.example",
    "    audiences: [https://gatepass.example.com]",
    "    keys: { source: pushed }",
    "  - name: lab-gitlab",
    "    url: https://gitlab.lab.example",
    "    audiences: [https://gatepass.example.com]",
    "    keys: { source: pushed }",
    "",
  ].join("\n"));
  await copyMigratedState(state);
  const pushed = await gatepassCli("policies", "push", "--local", "--persist-to", state, "--dir", policies, "--by", "test");
  expect(pushed.code, pushed.stderr).toBe(0);
  for (const [name, issuer] of [["corp", "corp-gitlab"], ["lab", "lab-gitlab"], ["revoked", "corp-gitlab"]] as const) {
    const created = await gatepassCli("jwks", "credential", "create", "--issuer", issuer, "--local", "--persist-to", state, "--by", "test");
    expect(created.code, created.stderr).toBe(0);
    credentials[name] = created.stdout.trim();
  }
  const revoked = await gatepassCli("jwks", "credential", "revoke", credentials.revoked!.slice(0, 20), "--local", "--persist-to", state);
  expect(revoked.code, revoked.stderr).toBe(0);
  await closeLocalStorage(); // the Worker opens the state from here on
  gatepass = await startWranglerDev({
    persistTo: state,
    vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development" }),
    secrets: { GATEPASS_ADMIN_TOKEN: ADMIN_TOKEN },
  });
}, 240_000);

afterAll(async () => {
  await gatepass?.stop();
  gitlab?.server.closeAllConnections();
  await new Promise((resolve) => gitlab?.server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The job's script under dash, with the job's `variables:` as defaults (GitLab lets project and
 * schedule variables override them) and the runner's predefined CI_SERVER_URL.
 */
function runJob(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  rmSync(curlLog, { force: true });
  const defaults = Object.entries(JOB.variables as Record<string, string>).map(([name, value]) => `: "\${${name}:=${value}}"; export ${name}`);
  const script = [...defaults, ...(JOB.script as string[])].join("\n");
  return new Promise((resolve) => {
    const child = spawn("dash", ["-c", script], { env: { PATH: `${bin}:${process.env.PATH}`, CI_SERVER_URL: gitlab.url, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const curlArgs = (): string => {
  try {
    return readFileSync(curlLog, "utf8");
  } catch {
    return "";
  }
};

describe("templates/jwks-push.gitlab-ci.yml as GitLab reads it", () => {
  it("is one job run by schedules and by hand, one at a time, in an image with curl, with keep as the default", () => {
    expect(Object.keys(TEMPLATE)).toEqual(["gatepass-jwks-push"]);
    expect(JOB.rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "schedule" || $CI_PIPELINE_SOURCE == "web"' }]);
    expect(JOB.resource_group).toBe("gatepass-jwks-push");
    expect(JOB.image).toEqual({ name: "$GATEPASS_PUSH_IMAGE", entrypoint: [""] });
    expect(JOB.variables).toMatchObject({ GATEPASS_PUSH_IMAGE: expect.stringMatching(/^curlimages\/curl:\d+\.\d+\.\d+$/), GITLAB_KEYS_URL: "$CI_SERVER_URL/oauth/discovery/keys", GATEPASS_PREVIOUS_KEYS: "keep" });
    // The credential is a masked project variable, never a value in the file.
    expect(JOB.variables).not.toHaveProperty("GATEPASS_PUSH_CREDENTIAL");
    expect(JOB.script).toHaveLength(1);
    expect(JOB.script[0]).not.toMatch(/\bjq\b|\bbash\b|\[\[/);
  });
});

describe("the job's script under dash against wrangler dev", () => {
  it("pushes GitLab's keys with the scoped credential, which never appears in curl's arguments; gatepass status shows the push", async () => {
    const corpId = credentials.corp!.slice(0, 20);
    const { code, stdout, stderr } = await runJob({ GATEPASS_URL: gatepass.url, GATEPASS_ISSUER_NAME: "corp-gitlab", GATEPASS_PUSH_CREDENTIAL: credentials.corp! });
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^gatepass: pushed \\{"issuer":"corp-gitlab","kids":\\["${key.kid}"\\],"fetched_at":\\d+,"pushed_by":"${corpId}","retired":\\[\\]\\}\\n$`));
    expect(curlArgs()).toContain(`${gatepass.url}/v1/admin/issuers/corp-gitlab/jwks?previous=keep`);
    expect(curlArgs()).not.toContain(credentials.corp!.slice(21));

    const status = await gatepassCli("status", "--url", gatepass.url);
    expect(status.stderr).toContain("warning: issuer lab-gitlab: no keys were ever pushed");
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`\\n  corp-gitlab  pushed  last push \\d+s ago \\(\\S+Z\\) by ${corpId}  kids: ${key.kid}\\n`));
    expect(status.stdout).toContain("\n  lab-gitlab  pushed  last push never  STALE  kids: none\n");
  });

  it("fails with gatepass's answer for a credential of another issuer, and for a revoked one", async () => {
    const wrongIssuer = await runJob({ GATEPASS_URL: gatepass.url, GATEPASS_ISSUER_NAME: "corp-gitlab", GATEPASS_PUSH_CREDENTIAL: credentials.lab! });
    expect(wrongIssuer.code).toBe(1);
    expect(wrongIssuer.stderr).toMatch(/^gatepass: the push failed \(HTTP 403\): \{.*"code":"push_credential_wrong_issuer".*\}\n$/);
    const revoked = await runJob({ GATEPASS_URL: gatepass.url, GATEPASS_ISSUER_NAME: "corp-gitlab", GATEPASS_PUSH_CREDENTIAL: credentials.revoked! });
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(/^gatepass: the push failed \(HTTP 401\): \{.*"code":"push_credential_revoked".*\}\n$/);
    for (const run of [wrongIssuer, revoked]) expect(run.stderr + run.stdout).not.toContain("_".concat(credentials.lab!.slice(21)));
  });

  it.each([
    ["a value that is not a push credential", { GATEPASS_PUSH_CREDENTIAL: ADMIN_TOKEN }, "is not a push credential"],
    ["an http:// gatepass off loopback", { GATEPASS_URL: "http://gatepass.example.com" }, "GATEPASS_URL must start with https://"],
    ["another GATEPASS_PREVIOUS_KEYS", { GATEPASS_PREVIOUS_KEYS: "yes" }, "GATEPASS_PREVIOUS_KEYS must be keep or drop"],
    ["no issuer name", { GATEPASS_ISSUER_NAME: "" }, "set GATEPASS_ISSUER_NAME"],
  ])("refuses %s before any request", async (_name, override, message) => {
    const before = gitlab.requests;
    const { code, stderr } = await runJob({ GATEPASS_URL: gatepass.url, GATEPASS_ISSUER_NAME: "corp-gitlab", GATEPASS_PUSH_CREDENTIAL: credentials.corp!, ...override });
    expect(code).not.toBe(0);
    expect(stderr).toContain(message);
    expect(gitlab.requests).toBe(before);
    expect(curlArgs()).toBe("");
  });

  it.each([
    ["an HTTP error", { status: 500, body: "oops" }, "(curl exit 0, HTTP 500)"],
    ["more than 100 KiB", { status: 200, body: JSON.stringify({ keys: [], pad: "x".repeat(110 * 1024) }) }, "(curl exit 63, HTTP 200)"],
  ])("pushes nothing when GitLab's keys cannot be read: %s", async (_name, answer, detail) => {
    gitlab.answer = answer;
    try {
      const { code, stderr } = await runJob({ GATEPASS_URL: gatepass.url, GATEPASS_ISSUER_NAME: "corp-gitlab", GATEPASS_PUSH_CREDENTIAL: credentials.corp! });
      expect(code).toBe(1);
      // (curl's own complaint, if any, comes first: --show-error)
      expect(stderr).toMatch(new RegExp(`(^|\\n)gatepass: reading the keys from ${gitlab.url}/oauth/discovery/keys failed ${detail.replace(/[()]/g, "\\$&")}; nothing was pushed\\n$`));
      expect(curlArgs()).not.toContain("/v1/admin/");
    } finally {
      gitlab.answer = { status: 200, body: JSON.stringify(jwksOf(key)) };
    }
  });
});

describe("the job's retries, against a scripted gatepass", () => {
  async function scriptedGatepass(statuses: number[]) {
    const seen: { method: string; url: string; authorization: string; body: string }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization ?? "", body });
        const status = statuses.shift() ?? 500;
        res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(status === 200 ? { issuer: "corp-gitlab" } : { code: "internal_error" }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise((resolve) => server.close(resolve)) };
  }

  it("retries a 5xx with the same PUT, and sends previous=drop when asked", { timeout: 30_000 }, async () => {
    const fake = await scriptedGatepass([503, 200]);
    try {
      const { code, stdout, stderr } = await runJob({ GATEPASS_URL: fake.url, GATEPASS_ISSUER_NAME: "corp-gitlab", GATEPASS_PUSH_CREDENTIAL: credentials.corp!, GATEPASS_PREVIOUS_KEYS: "drop" });
      expect(code).toBe(0);
      expect(stderr).toBe("gatepass: HTTP 503, retrying in 2 s (attempt 2 of 3)\n");
      expect(stdout).toBe('gatepass: pushed {"issuer":"corp-gitlab"}\n');
      expect(fake.seen).toHaveLength(2);
      for (const request of fake.seen) {
        expect(request).toEqual({ method: "PUT", url: "/v1/admin/issuers/corp-gitlab/jwks?previous=drop", authorization: `Bearer ${credentials.corp}`, body: JSON.stringify(jwksOf(key)) });
      }
    } finally {
      await fake.close();
    }
  });

  it("gives up after three attempts, and does not retry a 4xx", { timeout: 30_000 }, async () => {
    const failing = await scriptedGatepass([500, 502, 503, 200]);
    try {
      const { code, stderr } = await runJob({ GATEPASS_URL: failing.url, GATEPASS_ISSUER_NAME: "corp-gitlab", GATEPASS_PUSH_CREDENTIAL: credentials.corp! });
      expect(code).toBe(1);
      expect(failing.seen).toHaveLength(3);
      expect(stderr).toContain('gatepass: the push failed (HTTP 503): {"code":"internal_error"}\n');
    } finally {
      await failing.close();
    }
    const refusing = await scriptedGatepass([409, 200]);
    try {
      expect((await runJob({ GATEPASS_URL: refusing.url, GATEPASS_ISSUER_NAME: "corp-gitlab", GATEPASS_PUSH_CREDENTIAL: credentials.corp! })).code).toBe(1);
      expect(refusing.seen).toHaveLength(1);
    } finally {
      await refusing.close();
    }
  });
});

// The newcomer's path, verbatim: `npm run dev` starts gatepass on embedded defaults, and the README's
// local walkthrough, run by a real shell, gives what its comments promise. Then, on the same server
// (a `gatepass dev` start is the costliest thing a test does): an upstream override in its
// environment reaches the Worker, and a SIGTERM sent to the `gatepass dev` process alone (not its
// process group) stops wrangler and workerd too, freeing the port. Runs in a copy of the repository
// so it never touches the developer's own .dev.vars or local state (and on another port).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { walkthroughCommands } from "../support/readme";
import { copyRepository } from "../support/repository-copy";
import { freePort } from "../support/wrangler-dev";

const STEP = "--- walkthrough step ---";

/** A process's parent and process group, and its arguments, from /proc (Linux, as CI). */
function processInfo(pid: number): { ppid: number; pgid: number; argv: string[] } | undefined {
  try {
    // stat: "pid (comm) state ppid pgrp ...", where comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [, ppid, pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return {
      ppid: Number(ppid),
      pgid: Number(pgid),
      argv: readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0$/, "").split("\0"),
    };
  } catch {
    return undefined; // gone meanwhile
  }
}

/** The `gatepass dev` process in the group npm leads: the parent of `wrangler dev`. */
function gatepassDevPid(pgid: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    const info = /^\d+$/.test(entry) ? processInfo(Number(entry)) : undefined;
    if (
      info?.pgid === pgid &&
      info.argv.some((arg) => arg.endsWith("wrangler/bin/wrangler.js")) &&
      info.argv.includes("dev")
    )
      return info.ppid;
  }
  return undefined;
}

/** Whether any process is left in the process group led by pgid. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether nothing listens on the port any more (binding it succeeds). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    if (await condition()) return true;
  }
  return condition();
}

describe("README: npm run dev and the local walkthrough", () => {
  let sandbox: string;
  let dev: ChildProcess;
  let port: number;
  let output = "";
  // A stand-in STS on loopback, named by AWS_STS_URL in npm run dev's environment.
  const stsCalls: string[] = [];
  let sts: Server;

  beforeAll(async () => {
    sts = createHttpServer((req, res) => {
      stsCalls.push(`${req.method} ${req.url}`);
      res.writeHead(503, { "Content-Type": "text/plain" }).end("stand-in");
    });
    await new Promise<void>((resolve) => sts.listen(0, "127.0.0.1", resolve));
    sandbox = await copyRepository("gatepass-walkthrough-");
    port = await freePort();
    // Detached: its own process group, so stopping it also stops wrangler and workerd.
    dev = spawn("npm", ["run", "dev", "--", "--port", String(port)], {
      cwd: sandbox,
      detached: true,
      env: { ...process.env, AWS_STS_URL: `http://127.0.0.1:${(sts.address() as AddressInfo).port}/aws/{region}/` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    dev.stdout!.setEncoding("utf8").on("data", (d: string) => (output += d));
    dev.stderr!.setEncoding("utf8").on("data", (d: string) => (output += d));
    for (const deadline = Date.now() + 110_000; ; await new Promise((r) => setTimeout(r, 500))) {
      if (dev.exitCode !== null || Date.now() > deadline) throw new Error(`npm run dev did not come up:\n${output}`);
      const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined); // not listening yet
      if (res?.ok) break;
      if (res) throw new Error(`npm run dev is up but unhealthy: ${res.status} ${await res.text()}\n${output}`);
    }
  }, 120_000);

  afterAll(async () => {
    if (dev?.pid && dev.exitCode === null) {
      const exited = new Promise((resolve) => dev.once("exit", resolve));
      process.kill(-dev.pid, "SIGTERM");
      const timer = setTimeout(() => process.kill(-dev.pid!, "SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    if (dev?.pid && groupAlive(dev.pid)) process.kill(-dev.pid, "SIGKILL"); // what a failed stop left
    if (sandbox) await rm(sandbox, { recursive: true, force: true });
    await new Promise((resolve) => sts?.close(resolve));
  });

  it("writes the local-only settings to .dev.vars, none to wrangler.toml", async () => {
    const devVars = await readFile(path.join(sandbox, ".dev.vars"), "utf8");
    expect(devVars).toMatch(/^GATEPASS_ENV=development$/m);
    expect(devVars).toMatch(/^GATEPASS_SIGNING_KEYS=/m);
    expect(devVars).toMatch(/^GATEPASS_ADMIN_TOKEN=/m);
  });

  it("every walkthrough command gives what the README says", async () => {
    const commands = await walkthroughCommands();
    expect(commands[0]).toBe("GP=http://127.0.0.1:8787"); // written once: the only line that names the port
    expect(commands.slice(1).join("\n")).not.toContain("8787");
    commands[0] = `GP=http://127.0.0.1:${port}`;
    expect(commands).toHaveLength(8);
    const script = ["set -eu", ...commands.flatMap((command) => [command, `printf '\\n%s\\n' '${STEP}'`])].join("\n");
    const shell = spawn("sh", ["-c", script], { cwd: sandbox, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    shell.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    shell.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const code = await new Promise((resolve) => shell.once("exit", resolve));
    expect(code, stderr).toBe(0);

    const [gp, token, whoami, issued, branch, denied, why, discovery] = stdout
      .split(`\n${STEP}\n`)
      .map((part) => part.trim());
    expect([gp, token, branch]).toEqual(["", "", ""]); // the three assignments print nothing
    expect(JSON.parse(whoami!)).toMatchObject({
      issuer: "local-gitlab",
      claims: { project_path: "platform/infra", ref: "main", ref_protected: "true" },
    });
    expect(issued).toMatch(/^export GATEPASS_ISSUED_ID_TOKEN='[\w-]+\.[\w-]+\.[\w-]+'$/);
    const [deniedBody, deniedStatus] = denied!.split("\n");
    expect(deniedStatus).toBe("HTTP 403");
    const refusal = JSON.parse(deniedBody!) as Record<string, string>;
    expect(refusal).toMatchObject({ code: "policy_denied" });
    expect(refusal.error_description).toMatch(/^No policy rule lets project 'platform\/infra' \(ref 'feature', /);
    const { explain } = JSON.parse(why!) as {
      explain: { target: string; allowed: boolean; rules: { failures: { claim: string }[] }[] };
    };
    expect(explain).toMatchObject({ target: "gcp-deployer", allowed: false });
    expect(explain.rules[0]!.failures.map((failure) => failure.claim)).toEqual(["ref", "ref_protected"]);
    expect(JSON.parse(discovery!)).toMatchObject({
      issuer: `http://127.0.0.1:${port}`,
      jwks_uri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    });
  }, 60_000);
  it("pushes a save under policies/ after validating and testing it, and the next request sees it; a failing edit keeps the last good version", async () => {
    const adminToken = /^GATEPASS_ADMIN_TOKEN=(.*)$/m.exec(
      await readFile(path.join(sandbox, ".dev.vars"), "utf8"),
    )![1]!;
    const served = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/admin/status`, {
        headers: { Authorization: `Bearer ${adminToken}` },
      });
      return ((await res.json()) as { policy: { version: string } }).policy.version;
    };
    const count = (pattern: RegExp) => [...output.matchAll(pattern)].length;
    const pushed = () => [...output.matchAll(/pushed policy version ([0-9a-f]{64})/g)].map((match) => match[1]!);
    const refused = /the edit was not pushed; the last good version keeps serving/g;
    const before = await served();
    expect(pushed().at(-1)).toBe(before);
    const targets = path.join(sandbox, "policies/targets.yaml");
    const original = await readFile(targets, "utf8");

    const refusedBefore = count(refused);
    await writeFile(targets, `${original}\nnot: [closed\n`);
    expect(await waitFor(() => count(refused) > refusedBefore, 30_000), output).toBe(true);
    expect(output).toMatch(/targets\.yaml:\d+:\d+/); // the finding, with file:line:column
    expect(await served()).toBe(before);

    const pushesBefore = pushed().length;
    await writeFile(
      targets,
      original.replace("Read-only access to the shared AWS account.", "edited while gatepass dev runs"),
    );
    expect(await waitFor(() => pushed().length > pushesBefore, 30_000), output).toBe(true);
    const edited = pushed().at(-1)!;
    expect(edited).not.toBe(before);
    // The first request after the push: without the development re-check it would still be served `before`.
    expect(await served()).toBe(edited);
  }, 90_000);

  it("serves the local-github stand-in too: a `dev token --kind github` token is verified with its pushed keys and granted", async () => {
    const token = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [path.join(sandbox, "cli/gatepass.mjs"), "dev", "token", "--kind", "github"],
        { cwd: sandbox, stdio: ["ignore", "pipe", "inherit"] },
      );
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.once("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`dev token exited ${code}`))));
    });
    const res = await fetch(`http://127.0.0.1:${port}/v1/whoami`, { headers: { Authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { issuer: string; grants: { rule: string }[] };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.issuer).toBe("local-github");
    expect(body.grants.map((g) => g.rule)).toContain("local-github-main");
  }, 30_000);
  it("passes upstream overrides to the Worker, and a SIGTERM to gatepass dev alone stops wrangler and workerd, freeing the port", async () => {
    expect(output).toContain("gatepass dev: AWS_STS_URL=http://127.0.0.1:");
    const token = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(sandbox, "cli/gatepass.mjs"), "dev", "token"], {
        cwd: sandbox,
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.once("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`dev token exited ${code}`))));
    });
    const res = await fetch(`http://127.0.0.1:${port}/v1/credentials/aws-readonly`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(502); // the stand-in's 503, after gatepass's retries
    expect(stsCalls.length).toBeGreaterThan(0);
    expect(stsCalls.every((call) => call === "POST /aws/eu-west-1/")).toBe(true);

    const gatepassDev = gatepassDevPid(dev.pid!);
    expect(processInfo(gatepassDev!)?.argv.slice(-4), "the parent of wrangler dev").toEqual([
      "cli/gatepass.mjs",
      "dev",
      "--port",
      String(port),
    ]);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      dev.once("exit", (code, signal) => resolve({ code, signal })),
    );
    process.kill(gatepassDev!, "SIGTERM"); // the gatepass dev process only, not its group
    // It exits with wrangler's status, and npm with its.
    expect(await exited).toEqual({ code: expect.any(Number), signal: null });
    expect(await waitFor(() => !groupAlive(dev.pid!), 10_000), "wrangler or workerd outlived gatepass dev").toBe(true);
    expect(await portFree(port)).toBe(true);
  }, 60_000);
});

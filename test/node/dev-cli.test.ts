// `gatepass dev` as a process: the upstream overrides in its environment reach the Worker, and a
// SIGTERM sent to `gatepass dev` alone (not its process group) stops wrangler and workerd too, freeing
// the port. Runs in a copy of the repository, so the developer's .dev.vars and local state stay untouched.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { cp, mkdtemp, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/wrangler-dev";

const ROOT = path.resolve(import.meta.dirname, "../..");
/** What `gatepass dev` needs of the repository (node_modules is linked, not copied). */
const COPIED = ["cli", "migrations", "policies", "src", "templates", "package.json", "tsconfig.json", "wrangler.toml"];

let sandbox: string;

beforeAll(async () => {
  sandbox = await mkdtemp(path.join(tmpdir(), "gatepass-dev-cli-"));
  for (const entry of COPIED) await cp(path.join(ROOT, entry), path.join(sandbox, entry), { recursive: true });
  await symlink(path.join(ROOT, "node_modules"), path.join(sandbox, "node_modules"));
});

afterAll(async () => {
  if (sandbox) await rm(sandbox, { recursive: true, force: true });
});

interface Dev {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node cli/gatepass.mjs dev ...` in the sandbox, leading its own process group (which holds wrangler and workerd). */
function startDev(args: string[], env: Record<string, string> = {}): Dev {
  const child = spawn(process.execPath, [path.join(sandbox, "cli/gatepass.mjs"), "dev", ...args], {
    cwd: sandbox,
    detached: true,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, exited };
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

describe("gatepass dev", () => {
  it("refuses an upstream override the Worker would refuse, before preparing anything", async () => {
    const dev = startDev(["--port", String(await freePort())], { AWS_STS_URL: "http://sts.example.com/{region}/" });
    const { code } = await dev.exited;
    expect(code).toBe(1);
    expect(dev.output()).toMatch(/^gatepass dev: AWS_STS_URL is "http:\/\/sts\.example\.com\/\{region\}\/": give an https:\/\/ URL/);
    await expect(stat(path.join(sandbox, ".dev.vars"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("passes upstream overrides to the Worker, and a SIGTERM to gatepass dev alone stops wrangler and workerd, freeing the port", async () => {
    // A stand-in STS on loopback: the override is in effect when gatepass calls it for an aws target.
    const stsCalls: string[] = [];
    const sts = createHttpServer((req: IncomingMessage, res) => {
      stsCalls.push(`${req.method} ${req.url}`);
      res.writeHead(503, { "Content-Type": "text/plain" }).end("stand-in");
    });
    await new Promise<void>((resolve) => sts.listen(0, "127.0.0.1", resolve));
    const port = await freePort();
    const dev = startDev(["--port", String(port)], { AWS_STS_URL: `http://127.0.0.1:${(sts.address() as AddressInfo).port}/aws/{region}/` });
    const pgid = dev.child.pid!;
    try {
      const up = await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok === true || dev.child.exitCode !== null, 150_000);
      expect(up && dev.child.exitCode === null, dev.output()).toBe(true);
      expect(dev.output()).toContain("gatepass dev: AWS_STS_URL=http://127.0.0.1:");

      const token = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, [path.join(sandbox, "cli/gatepass.mjs"), "dev", "token"], { cwd: sandbox, stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
        child.once("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`dev token exited ${code}`))));
      });
      const res = await fetch(`http://127.0.0.1:${port}/v1/credentials/aws-readonly`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
      expect(res.status).toBe(502); // the stand-in's 503, after gatepass's retries
      expect(stsCalls.length).toBeGreaterThan(0);
      expect(stsCalls.every((call) => call === "POST /aws/eu-west-1/")).toBe(true);

      process.kill(pgid, "SIGTERM"); // the gatepass dev process only, not its group
      const { code, signal } = await dev.exited;
      expect({ code, signal }).toEqual({ code: expect.any(Number), signal: null }); // it exits with wrangler's status
      expect(await waitFor(() => !groupAlive(pgid), 10_000), "wrangler or workerd outlived gatepass dev").toBe(true);
      expect(await portFree(port)).toBe(true);
    } finally {
      if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL");
      await new Promise((resolve) => sts.close(resolve));
    }
  }, 200_000);
});

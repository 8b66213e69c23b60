// The newcomer's path, verbatim: `npm run dev` starts gatepass on embedded defaults, and the README's
// local walkthrough, run by a real shell, gives what its comments promise. Runs in a copy of the
// repository so it never touches the developer's own .dev.vars or local state (and on another port).
import { spawn, type ChildProcess } from "node:child_process";
import { cp, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { walkthroughCommands } from "../support/readme";
import { freePort } from "../support/wrangler-dev";

const ROOT = path.resolve(import.meta.dirname, "../..");
/** What `npm run dev` needs of the repository (node_modules is linked, not copied). */
const COPIED = ["cli", "migrations", "policies", "src", "templates", "package.json", "tsconfig.json", "wrangler.toml"];
const STEP = "--- walkthrough step ---";


describe("README: npm run dev and the local walkthrough", () => {
  let sandbox: string;
  let dev: ChildProcess;
  let port: number;
  let output = "";

  beforeAll(async () => {
    sandbox = await mkdtemp(path.join(tmpdir(), "gatepass-walkthrough-"));
    for (const entry of COPIED) await cp(path.join(ROOT, entry), path.join(sandbox, entry), { recursive: true });
    await symlink(path.join(ROOT, "node_modules"), path.join(sandbox, "node_modules"));
    port = await freePort();
    // Detached: its own process group, so stopping it also stops wrangler and workerd.
    dev = spawn("npm", ["run", "dev", "--", "--port", String(port)], { cwd: sandbox, detached: true, stdio: ["ignore", "pipe", "pipe"] });
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
    if (sandbox) await rm(sandbox, { recursive: true, force: true });
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

    const [gp, token, whoami, issued, branch, denied, why, discovery] = stdout.split(`\n${STEP}\n`).map((part) => part.trim());
    expect([gp, token, branch]).toEqual(["", "", ""]); // the three assignments print nothing
    expect(JSON.parse(whoami!)).toMatchObject({ issuer: "local-gitlab", claims: { project_path: "platform/infra", ref: "main", ref_protected: "true" } });
    expect(issued).toMatch(/^export GATEPASS_ISSUED_ID_TOKEN='[\w-]+\.[\w-]+\.[\w-]+'$/);
    const [deniedBody, deniedStatus] = denied!.split("\n");
    expect(deniedStatus).toBe("HTTP 403");
    const refusal = JSON.parse(deniedBody!) as Record<string, string>;
    expect(refusal).toMatchObject({ code: "policy_denied" });
    expect(refusal.error_description).toMatch(/^No policy rule lets project 'platform\/infra' \(ref 'feature', /);
    const { explain } = JSON.parse(why!) as { explain: { target: string; allowed: boolean; rules: { failures: { claim: string }[] }[] } };
    expect(explain).toMatchObject({ target: "gcp-deployer", allowed: false });
    expect(explain.rules[0]!.failures.map((failure) => failure.claim)).toEqual(["ref", "ref_protected"]);
    expect(JSON.parse(discovery!)).toMatchObject({ issuer: `http://127.0.0.1:${port}`, jwks_uri: `http://127.0.0.1:${port}/.well-known/jwks.json` });
  }, 60_000);
});

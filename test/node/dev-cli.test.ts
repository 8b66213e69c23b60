// `gatepass dev` as a process, refusing a bad upstream override or a busy port before it prepares anything. Runs in a
// copy of the repository, so the developer's .dev.vars and local state stay untouched. A running
// `gatepass dev` (overrides reaching the Worker, signal forwarding) is tested on the walkthrough's
// `npm run dev` (walkthrough.test.ts): one start serves both.
import { execFile } from "node:child_process";
import { readdir, rm, stat } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyRepository } from "../support/repository-copy";
import { freePort } from "../support/wrangler-dev";

let sandbox: string;

beforeAll(async () => {
  sandbox = await copyRepository("gatepass-dev-cli-");
});

afterAll(async () => {
  if (sandbox) await rm(sandbox, { recursive: true, force: true });
});

describe("gatepass dev", () => {
  it("refuses an upstream override the Worker would refuse, before preparing anything", async () => {
    const port = String(await freePort());
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [path.join(sandbox, "cli/gatepass.mjs"), "dev", "--port", port],
        { cwd: sandbox, env: { ...process.env, AWS_STS_URL: "http://sts.example.com/{region}/" } },
        (_err, stdout, stderr) => resolve({ code: child.exitCode, output: stdout + stderr }),
      );
    });
    expect(code).toBe(1);
    expect(output).toMatch(
      /^gatepass dev: AWS_STS_URL is "http:\/\/sts\.example\.com\/\{region\}\/": give an https:\/\/ URL/,
    );
    await expect(stat(path.join(sandbox, ".dev.vars"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses a busy port in one line, exit 2, before writing anything", async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const port = String((busy.address() as { port: number }).port);
    const before = await readdir(sandbox);
    try {
      const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = execFile(
          process.execPath,
          [path.join(sandbox, "cli/gatepass.mjs"), "dev", "--port", port],
          { cwd: sandbox },
          (_err, stdout, stderr) => resolve({ code: child.exitCode, output: stdout + stderr }),
        );
      });
      expect(code).toBe(2);
      expect(output).toBe(
        `gatepass dev: 127.0.0.1:${port} is in use (another gatepass dev?); stop it or pass --port\n`,
      );
      expect(await readdir(sandbox)).toEqual(before); // no .dev.vars, no .wrangler/
    } finally {
      await new Promise((resolve) => (busy as Server).close(resolve));
    }
  });
});

// `gatepass dev` as a process, refusing a bad upstream override before it prepares anything. Runs in a
// copy of the repository, so the developer's .dev.vars and local state stay untouched. A running
// `gatepass dev` (overrides reaching the Worker, signal forwarding) is tested on the walkthrough's
// `npm run dev` (walkthrough.test.ts): one start serves both.
import { execFile } from "node:child_process";
import { rm, stat } from "node:fs/promises";
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
    expect(output).toMatch(/^gatepass dev: AWS_STS_URL is "http:\/\/sts\.example\.com\/\{region\}\/": give an https:\/\/ URL/);
    await expect(stat(path.join(sandbox, ".dev.vars"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

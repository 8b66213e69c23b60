// `npm run demo` run to its end (it checks every answer and exits non-zero on a surprise), and
// `npm run demo` stopped half-way (Ctrl-C, or a SIGTERM from whatever runs it): `wrangler dev` runs in
// its own process group, so the demo itself has to stop it, and workerd and its temporary files with it.
// Each run gets a private TMPDIR, which every process it starts inherits: afterwards no process may
// still carry it, and the temporary state and secrets directories must be gone.
import { spawn, type ChildProcess } from "node:child_process";
import { readdir, readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const TSX = path.resolve("node_modules/tsx/dist/cli.mjs");

/** Pids of live processes whose environment holds `marker` (Linux: /proc). */
async function processesWith(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await readFile(`/proc/${entry}/environ`, "utf8")).split("\0").includes(marker)) pids.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return pids;
}

async function interruptDemo(stop: (demo: ChildProcess) => void): Promise<void> {
  const scratch = await mkdtemp(path.join(tmpdir(), "gatepass-demo-test-"));
  const marker = `TMPDIR=${scratch}`;
  // Detached: its own process group, like a terminal job, so a group signal is a Ctrl-C.
  const demo = spawn(process.execPath, [TSX, "scripts/demo.ts"], {
    env: { ...process.env, TMPDIR: scratch },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let url: string | undefined;
  const collect = (d: string) => {
    output += d;
    // Interrupt the moment gatepass is up, from this callback: the steps after it take only a few
    // hundred ms, so a polling delay could let the demo finish first and leave nothing to interrupt.
    if (url) return;
    url = /gatepass: (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
    if (url) stop(demo);
  };
  demo.stdout!.setEncoding("utf8").on("data", collect);
  demo.stderr!.setEncoding("utf8").on("data", collect);
  const exited = new Promise<number | null>((resolve) => demo.once("exit", (code) => resolve(code)));
  try {
    const code = await exited;
    expect(url, output).toBeDefined();
    expect(code, output).not.toBe(0);
    // workerd gets the same SIGTERM as wrangler and may outlive it by a moment.
    let left = await processesWith(marker);
    for (
      const deadline = Date.now() + 5_000;
      left.length > 0 && Date.now() < deadline;
      left = await processesWith(marker)
    )
      await new Promise((r) => setTimeout(r, 250));
    expect(left, output).toEqual([]);
    expect(
      (await readdir(scratch)).filter((name) => name.startsWith("gatepass-dev-")),
      output,
    ).toEqual([]);
    await expect(fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
    expect(output).toContain("stopping the servers");
  } finally {
    // Whatever this run left behind (only ever processes it started) is ended here, by pid.
    if (demo.exitCode === null) demo.kill("SIGKILL");
    for (const pid of await processesWith(marker)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await rm(scratch, { recursive: true, force: true });
  }
}

describe("npm run demo", () => {
  it("walks through every step against the real gatepass and exits 0 (it exits non-zero on any unexpected answer)", async () => {
    const demo = spawn("npm", ["run", "demo"], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    demo.stdout!.setEncoding("utf8").on("data", (d: string) => (output += d));
    demo.stderr!.setEncoding("utf8").on("data", (d: string) => (output += d));
    const code = await new Promise((resolve) => demo.once("exit", resolve));
    expect(code, output).toBe(0);
    const steps = [...output.matchAll(/^▶ (.*)$/gm)].map((m) => m[1]!);
    expect(steps.filter((step) => step.includes("STAND-IN")).length).toBeGreaterThanOrEqual(4); // clearly labelled
    for (const expected of [
      "POST /v1/credentials/gcp-deploy format=env",
      "POST /v1/credentials/aws-deploy format=credential_process",
      "from unprotected `feature/try-things` — refused",
      "Demo complete",
    ]) {
      expect(
        steps.some((step) => step.includes(expected)),
        expected,
      ).toBe(true);
    }
    expect(output).toMatch(/"code": ?"policy_denied"/);
  }, 120_000);
});

describe.runIf(process.platform === "linux")("npm run demo, interrupted", () => {
  it("Ctrl-C (SIGINT to its process group) stops wrangler dev and workerd and removes their temporary files", async () => {
    await interruptDemo((demo) => process.kill(-demo.pid!, "SIGINT"));
  }, 150_000);

  it("SIGTERM to the demo does the same", async () => {
    await interruptDemo((demo) => demo.kill("SIGTERM"));
  }, 150_000);
});

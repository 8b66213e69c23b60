// `gatepass keys generate | rotate --local` as a user runs them.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSigningKeySecret } from "../../src/mint/keys";

const CLI = path.resolve("cli/gatepass.mjs");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "gatepass-keys-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function gatepass(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { cwd: dir });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function secretIn(devVars: string) {
  const line = /^GATEPASS_SIGNING_KEYS='(.*)'$/m.exec(devVars);
  expect(line).not.toBeNull();
  return parseSigningKeySecret(line![1]!);
}

describe("gatepass keys", () => {
  it("generate prints a valid secret: ES256 current + next by default, RS256 on request", async () => {
    const es = await gatepass("keys", "generate");
    expect(es.code).toBe(0);
    expect(parseSigningKeySecret(es.stdout).keys.map((k) => `${k.alg}:${k.status}`)).toEqual(["ES256:current", "ES256:next"]);
    const both = await gatepass("keys", "generate", "--alg", "ES256,RS256");
    expect(parseSigningKeySecret(both.stdout).keys.map((k) => `${k.alg}:${k.status}`)).toEqual(["ES256:current", "ES256:next", "RS256:current", "RS256:next"]);
    expect((await gatepass("keys", "generate", "--alg", "HS256")).code).toBe(2);
  });

  it("generate --dev-vars writes the secret privately and keeps other variables", async () => {
    const file = path.join(dir, ".dev.vars");
    await writeFile(file, "GATEPASS_ADMIN_TOKEN=abc\n");
    const result = await gatepass("keys", "generate", "--dev-vars", file);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("");
    expect(result.stderr).not.toMatch(/"d"/);
    const text = await readFile(file, "utf8");
    expect(text).toMatch(/^GATEPASS_ADMIN_TOKEN=abc\n/);
    expect(secretIn(text).keys).toHaveLength(2);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("rotate --local refuses a next key relying parties may not know yet, and rotates with --force", async () => {
    const file = path.join(dir, "rotate.vars");
    await gatepass("keys", "generate", "--dev-vars", file);
    const before = secretIn(await readFile(file, "utf8"));
    const refused = await gatepass("keys", "rotate", "--local", "--dev-vars", file);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--force");
    expect(secretIn(await readFile(file, "utf8"))).toEqual(before);

    expect((await gatepass("keys", "rotate", "--local", "--dev-vars", file, "--force")).code).toBe(0);
    const after = secretIn(await readFile(file, "utf8"));
    const kid = (status: string) => after.keys.find((k) => k.status === status)?.kid;
    expect(kid("current")).toBe(before.keys.find((k) => k.status === "next")!.kid);
    expect(kid("previous")).toBe(before.keys.find((k) => k.status === "current")!.kid);
    expect([kid("current"), kid("previous")]).not.toContain(kid("next"));
  });

  it("rotate needs exactly one of --local and --remote", async () => {
    expect((await gatepass("keys", "rotate")).code).toBe(2);
    expect((await gatepass("keys", "rotate", "--local", "--remote")).code).toBe(2);
  });
});

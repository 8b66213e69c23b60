// `gatepass keys generate | rotate | add` as a user runs them: in process (test/support/cli.ts), and
// as a process where the environment matters (no Cloudflare login for --remote).
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSigningKeySecret } from "../../src/signing-keys/signing-key-secret";
import { generateSecret, serializeSecret } from "../../src/signing-keys/signing-key-rotation";
import { gatepassInProcess, gatepassProcess } from "../support/cli";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "gatepass-keys-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const gatepass = gatepassInProcess;

function secretIn(devVars: string) {
  const line = /^GATEPASS_SIGNING_KEYS='(.*)'$/m.exec(devVars);
  expect(line).not.toBeNull();
  return parseSigningKeySecret(line![1]!);
}

describe("gatepass keys", () => {
  it("generate prints a valid secret: ES256 and RS256 current + next by default, ES256 alone on request", async () => {
    const both = await gatepass("keys", "generate");
    expect(both.code).toBe(0);
    expect(parseSigningKeySecret(both.stdout).keys.map((k) => `${k.alg}:${k.status}`)).toEqual([
      "ES256:current",
      "ES256:next",
      "RS256:current",
      "RS256:next",
    ]);
    const es = await gatepass("keys", "generate", "--alg", "ES256");
    expect(parseSigningKeySecret(es.stdout).keys.map((k) => `${k.alg}:${k.status}`)).toEqual([
      "ES256:current",
      "ES256:next",
    ]);
    // ES256 is the default signer, so a secret always has it.
    const rs = await gatepass("keys", "generate", "--alg", "RS256");
    expect(parseSigningKeySecret(rs.stdout).keys.map((k) => `${k.alg}:${k.status}`)).toEqual([
      "ES256:current",
      "ES256:next",
      "RS256:current",
      "RS256:next",
    ]);
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
    expect(secretIn(text).keys).toHaveLength(4);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("generate --out writes the secret with mode 0600, says where without printing it, and never replaces a file without --force", async () => {
    const file = path.join(dir, "secret.json");
    const result = await gatepass("keys", "generate", "--out", file);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(file);
    expect(result.stderr).toMatch(/secret store/);
    expect(result.stderr).not.toMatch(/"d"/);
    const first = await readFile(file, "utf8");
    expect(parseSigningKeySecret(first).keys.map((k) => `${k.alg}:${k.status}`)).toEqual([
      "ES256:current",
      "ES256:next",
      "RS256:current",
      "RS256:next",
    ]);
    expect(result.stderr).not.toContain(parseSigningKeySecret(first).keys[0]!.d as string);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const refused = await gatepass("keys", "generate", "--out", file);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--force");
    expect(await readFile(file, "utf8")).toBe(first);

    // --force replaces it, and a file that was world-readable ends up private.
    await chmod(file, 0o644);
    expect((await gatepass("keys", "generate", "--out", file, "--force")).code).toBe(0);
    const second = await readFile(file, "utf8");
    expect(second).not.toBe(first);
    expect(parseSigningKeySecret(second).keys).toHaveLength(4);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((name) => name.includes(".tmp"))).toEqual([]);

    expect((await gatepass("keys", "generate", "--out", file, "--dev-vars", path.join(dir, "x.vars"))).code).toBe(2);
  });

  it("rotate --remote changes no file when wrangler cannot set the secret", async () => {
    const file = path.join(dir, "remote-secret.json");
    const before = `${serializeSecret(await generateSecret(["ES256"], Math.floor(Date.now() / 1000) - 3600))}\n`;
    await writeFile(file, before, { mode: 0o600 });
    // No Cloudflare credentials (and a private HOME, so no wrangler login either): the upload fails.
    const home = path.join(dir, "no-login-home");
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CONFIG_HOME: home, CI: "true" };
    for (const name of ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL", "CLOUDFLARE_ACCOUNT_ID"])
      delete env[name];
    const result = await gatepassProcess(["keys", "rotate", "--remote", "--from", file, "--out", file], {
      cwd: dir,
      env,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no file was changed/);
    expect(result.stdout).toBe("");
    expect(await readFile(file, "utf8")).toBe(before);
    expect((await readdir(dir)).filter((name) => name.includes(".tmp"))).toEqual([]);
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

  it("add --local gives a secret an algorithm it lacks, keeps its keys, and refuses one it has", async () => {
    const file = path.join(dir, "add.vars");
    await gatepass("keys", "generate", "--alg", "ES256", "--dev-vars", file);
    const before = secretIn(await readFile(file, "utf8"));
    const added = await gatepass("keys", "add", "--alg", "RS256", "--local", "--dev-vars", file);
    expect(added.code, added.stderr).toBe(0);
    const after = secretIn(await readFile(file, "utf8"));
    expect(after.keys.filter((k) => k.alg === "ES256")).toEqual(before.keys);
    expect(
      after.keys
        .filter((k) => k.alg === "RS256")
        .map((k) => k.status)
        .sort(),
    ).toEqual(["current", "next"]);

    const again = await gatepass("keys", "add", "--alg", "RS256", "--local", "--dev-vars", file);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("already has RS256 keys");
    expect(secretIn(await readFile(file, "utf8"))).toEqual(after);
  });

  it("add needs --alg and takes no --force; rotate takes no --alg (usage, exit 2)", async () => {
    const file = path.join(dir, "misuse.vars");
    await gatepass("keys", "generate", "--alg", "ES256", "--dev-vars", file);
    const before = await readFile(file, "utf8");
    for (const args of [
      ["add", "--local"],
      ["add", "--local", "--alg", "RS256", "--force"],
      ["add", "--local", "--alg", "RS512"],
      ["rotate", "--local", "--alg", "RS256"],
    ]) {
      const result = await gatepass("keys", ...args, "--dev-vars", file);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(/--alg|--force/);
    }
    expect(await readFile(file, "utf8")).toBe(before);
  });

  it("rotate needs exactly one of --local and --remote", async () => {
    expect((await gatepass("keys", "rotate")).code).toBe(2);
    expect((await gatepass("keys", "rotate", "--local", "--remote")).code).toBe(2);
  });

  it("exits 2 (usage) on an unknown option or contradictory storage flags, like every command group", async () => {
    expect((await gatepass("keys", "generate", "--bogus")).code).toBe(2);
    expect((await gatepass("audit", "query", "--bogus")).code).toBe(2);
    // Refused before wrangler runs: nothing here could reach local state or an account.
    for (const args of [
      ["audit", "query", "--local", "--remote"],
      ["audit", "tail", "--remote", "--persist-to", dir],
      ["policies", "history", "--remote", "--persist-to", dir],
      ["jwks", "push", "--issuer", "corp-gitlab", "--file", "jwks.json", "--local", "--remote"],
    ]) {
      const result = await gatepass(...args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(
        /choose one of --local and --remote|--persist-to only applies to --local/,
      );
    }
  });

  it("prints a command group's usage on --help, wherever it stands (exit 0)", async () => {
    for (const args of [
      ["keys", "--help"],
      ["keys", "generate", "--help"],
      ["audit", "query", "-h"],
      ["dev", "token", "--help"],
    ]) {
      const result = await gatepass(...args);
      expect(result.code, args.join(" ")).toBe(0);
      // The group's one-line summary (which keys it handles, for keys and jwks), then its usage.
      expect(result.stdout, args.join(" ")).toMatch(
        new RegExp(`^gatepass ${args[0]}: [^\\n]+\\nusage:\\n  ${args[0]} `),
      );
    }
    const everything = await gatepass("--help");
    expect(everything.code).toBe(0);
    expect(everything.stdout).toMatch(/^usage: gatepass <command> ...\n\n  audit query /);
    const unknown = await gatepass("bogus");
    expect([unknown.code, unknown.stdout]).toEqual([2, ""]);
    expect(unknown.stderr).toBe("gatepass: unknown command 'bogus'; run 'gatepass --help' for the list\n");
  });
});

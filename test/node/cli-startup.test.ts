// The CLI starts at once: it runs the build in dist/cli/ (scripts/build-cli.mjs), never a stale one,
// and each command loads only what it needs. A misspelled command says so and suggests the nearest.
// (Its speed is measured by `npm run bench -- cli`, not asserted here: timing depends on the machine.)
import { writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as esbuild from "esbuild";
import { nearest } from "../../cli/suggest";
// @ts-expect-error: a plain JavaScript module without type declarations
import { options as buildOptions } from "../../scripts/build-cli.mjs";
import { gatepassInProcess, gatepassProcess } from "../support/cli";
import { copyRepository } from "../support/repository-copy";

const ROOT = path.resolve(import.meta.dirname, "../..");
const { version } = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as { version: string };

/** A preload that records, at exit, which packages the process loaded through require (wrangler's way in). */
const PRELOAD = path.join(tmpdir(), `gatepass-loaded-packages-${process.pid}.cjs`);

beforeAll(() => {
  writeFileSync(
    PRELOAD,
    `process.on("exit", () => { const names = new Set(); for (const file of Object.keys(require.cache)) { const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(file); if (m) names.add(m[1]); } process.stderr.write("LOADED " + JSON.stringify([...names]) + "\\n"); });\n`,
  );
});

afterAll(async () => {
  await rm(PRELOAD, { force: true });
});

/** The packages a `gatepass ...` process loaded by require. */
async function packagesLoadedBy(args: string[]): Promise<{ code: number; loaded: string[] }> {
  const result = await gatepassProcess(args, {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: `--require ${PRELOAD}` },
  });
  const line = result.stderr.split("\n").find((l) => l.startsWith("LOADED "));
  return { code: result.code, loaded: JSON.parse(line!.slice("LOADED ".length)) as string[] };
}

describe("the built CLI", () => {
  it("gatepass --version prints the package's version", async () => {
    const result = await gatepassProcess(["--version"]);
    expect(result).toEqual({ code: 0, stdout: `gatepass ${version}\n`, stderr: "" });
  });

  it("--help and policies validate load neither wrangler nor miniflare", async () => {
    const help = await packagesLoadedBy(["--help"]);
    const validate = await packagesLoadedBy(["policies", "validate"]);
    expect(help.code).toBe(0);
    expect(validate.code).toBe(0);
    for (const { loaded } of [help, validate])
      expect(loaded.filter((name) => ["wrangler", "miniflare", "tsx", "esbuild"].includes(name))).toEqual([]);
    // The preload does see wrangler when a command loads it.
    const deployCheck = await packagesLoadedBy(["deploy", "--env", "nowhere", "--config", "no-such.toml", "--dry-run"]);
    expect(deployCheck.loaded).toContain("wrangler");
  });

  it("main.mjs imports no command group and no package at load; no chunk imports a package at load (wrangler is required on first use)", async () => {
    const result = (await esbuild.build(
      buildOptions(path.join(tmpdir(), "gatepass-cli-probe"), false),
    )) as esbuild.BuildResult<{ metafile: true }>;
    const outputs = result.metafile.outputs;
    const staticClosure = (output: string): Set<string> => {
      const seen = new Set<string>([output]);
      const queue = [output];
      while (queue.length > 0) {
        for (const imported of outputs[queue.shift()!]?.imports ?? []) {
          if (imported.kind === "dynamic-import" || seen.has(imported.path)) continue;
          seen.add(imported.path);
          queue.push(imported.path);
        }
      }
      return seen;
    };
    const inputsOf = (closure: Set<string>) =>
      [...closure].flatMap((output) => Object.keys(outputs[output]?.inputs ?? {}));
    const main = Object.keys(outputs).find((output) => output.endsWith("/main.mjs"))!;
    const mainInputs = inputsOf(staticClosure(main));
    expect(
      mainInputs.filter((input) => input.startsWith("cli/commands/") || input.startsWith("node_modules/")),
    ).toEqual([]);
    expect(mainInputs).toContain("cli/help.ts");
    // yaml and jose are bundled; wrangler, miniflare and esbuild stay packages, and no chunk imports one at load.
    for (const [output, meta] of Object.entries(outputs)) {
      const packages = meta.imports
        .filter((i) => i.external && i.kind !== "dynamic-import" && !isBuiltin(i.path))
        .map((i) => i.path);
      expect(packages, output).toEqual([]);
    }
  });

  it("rebuilds when a source changed since the build: an edited checkout never runs an old bundle", async () => {
    const copy = await copyRepository("gatepass-stale-");
    try {
      const before = await gatepassProcess(["--help"], { cwd: copy });
      expect(before.stdout).toContain("check policy files (strict parsing + lint)");
      const help = path.join(copy, "cli/help.ts");
      await writeFile(
        help,
        (await readFile(help, "utf8")).replace("check policy files (strict parsing + lint)", "EDITED DESCRIPTION"),
      );
      const { execFile } = await import("node:child_process");
      const after = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, [path.join(copy, "cli/gatepass.mjs"), "--help"], { cwd: copy }, (error, stdout) =>
          error ? reject(error) : resolve(stdout),
        ),
      );
      expect(after).toContain("EDITED DESCRIPTION");
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("a misspelled command", () => {
  it("says so, suggests the nearest command and exits 2 (as a process)", async () => {
    const result = await gatepassProcess(["polices", "validate"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "gatepass: unknown command 'polices'; did you mean 'gatepass policies validate'? run 'gatepass --help' for the list\n",
    );
  });

  it.each([
    [
      ["policies", "valdate"],
      "unknown command 'policies valdate'; did you mean 'gatepass policies validate'? run 'gatepass policies --help' for the list",
    ],
    [
      ["jwks", "credential", "crate", "--issuer", "x"],
      "unknown command 'jwks credential crate'; did you mean 'gatepass jwks credential create'? run 'gatepass jwks --help' for the list",
    ],
    [
      ["dev", "tokn"],
      "unknown command 'dev tokn'; did you mean 'gatepass dev token'? run 'gatepass dev --help' for the list",
    ],
    [["frobnicate"], "unknown command 'frobnicate'; run 'gatepass --help' for the list"],
    [["--frobnicate"], "unknown command '--frobnicate'; run 'gatepass --help' for the list"],
  ])("gatepass %j", async (args, message) => {
    const result = await gatepassInProcess(...args);
    expect(result).toEqual({ code: 2, stdout: "", stderr: `gatepass: ${message}\n` });
  });

  it("takes a command's own arguments as arguments, not as misspelled commands", async () => {
    const result = await gatepassInProcess("policies", "schema", "validat");
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Unexpected argument 'validat'");
    expect(result.stderr).not.toContain("unknown command");
  });

  it("suggests only near words: a typo, a transposition or an unambiguous start", () => {
    expect(nearest("polices", ["policies", "audit"])).toBe("policies");
    expect(nearest("aduit", ["policies", "audit"])).toBe("audit");
    expect(nearest("pol", ["policies", "push"])).toBe("policies");
    expect(nearest("p", ["policies", "push"])).toBeUndefined();
    expect(nearest("zzzzzz", ["policies", "audit"])).toBeUndefined();
  });
});

// What a newcomer meets at the command line: help whose columns line up, option values refused when
// they are not what GitLab sends, and a YAML typo reported once, where it is.
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { decodeJwt, exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatUsage, HELP_COLUMN } from "../../cli/usage-error";
import { gatepassInProcess, gatepassProcess } from "../support/cli";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** In process (test/support/cli.ts). */
const gatepass = (args: string[]) => gatepassInProcess(...args);

/**
 * Lines of a usage text that break its columns. Each line is a command (`  group ...`, with its
 * description after a gap of two or more spaces, at HELP_COLUMN), a continuation of the options above
 * (indented less than HELP_COLUMN, no description), or a description line (at HELP_COLUMN exactly).
 */
function misaligned(text: string): string[] {
  return text.split("\n").filter((line) => {
    const indent = /^ */.exec(line)![0].length;
    if (indent === HELP_COLUMN) return false;
    if (indent === 2) {
      const gap = /\S( {2,})\S/.exec(line);
      return gap !== null && gap.index + 1 + gap[1]!.length !== HELP_COLUMN;
    }
    return indent > HELP_COLUMN || !/^[[(|-]/.test(line.trimStart()) || /\S {2,}\S/.test(line);
  });
}

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-cli-"));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("help", () => {
  it("lays out descriptions at one column: on a short one-line command, else below; option lines under the first option", () => {
    const text = formatUsage([
      { synopsis: ["tool run [--fast]"], help: ["runs it", "quickly"] },
      {
        synopsis: ["tool configure --name N [--a very long option list that does not fit]", "[--more options]"],
        help: ["configures it"],
      },
    ]);
    const pad = " ".repeat(HELP_COLUMN);
    expect(text.split("\n")).toEqual([
      `  tool run [--fast]`.padEnd(HELP_COLUMN) + "runs it",
      `${pad}quickly`,
      "  tool configure --name N [--a very long option list that does not fit]",
      "                 [--more options]",
      `${pad}configures it`,
    ]);
    expect(misaligned(text)).toEqual([]);
    // The checker catches a hand-padded description one column off.
    expect(misaligned(`  tool run [--fast]${" ".repeat(HELP_COLUMN - 18)}runs it`)).toHaveLength(1);
    expect(misaligned(`  tool run [--fast]\n${" ".repeat(HELP_COLUMN + 1)}runs it`)).toHaveLength(1);
  });

  it("gatepass --help and every group's --help are aligned", async () => {
    const all = await gatepass(["--help"]);
    expect(all.code).toBe(0);
    const body = all.stdout.replace(/^usage: gatepass <command> \.\.\.\n\n/, "");
    expect(body).not.toBe(all.stdout);
    expect(misaligned(body.trimEnd())).toEqual([]);
    for (const group of ["audit", "dev", "jwks", "keys", "policies"]) {
      const help = await gatepass([group, "--help"]);
      expect(help.code, group).toBe(0);
      const text = help.stdout.replace(/^[^\n]*\nusage:\n/, "");
      expect(text, group).not.toBe(help.stdout);
      expect(misaligned(text.trimEnd()), group).toEqual([]);
      // The top-level help holds each group's text unchanged.
      expect(body, group).toContain(text);
    }
  });

  it("says in the first line of keys --help and jwks --help which keys each handles", async () => {
    const first = async (group: string) => (await gatepass([group, "--help"])).stdout.split("\n")[0];
    expect(await first("keys")).toMatch(
      /^gatepass keys: gatepass's own signing keys .*CI issuers' verification keys are `gatepass jwks`$/,
    );
    expect(await first("jwks")).toMatch(
      /^gatepass jwks: CI issuers' verification keys .*gatepass's own signing keys are `gatepass keys`$/,
    );
  });
});

describe("dev token options", () => {
  it("takes only true or false for --protected (and branch or tag for --ref-type): exit 2, nothing printed", async () => {
    for (const args of [
      ["--protected", "no"],
      ["--protected", "TRUE"],
      ["--protected", ""],
      ["--ref-type", "Branch"],
      ["--ttl", "1h"],
    ]) {
      const result = await gatepass(["dev", "token", ...args]);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stdout, args.join(" ")).toBe("");
      expect(result.stderr, args.join(" ")).toMatch(new RegExp(`^gatepass: ${args[0]} takes `));
    }
  });

  it('mints the value given: --protected false becomes ref_protected "false"', async () => {
    // A stand-in issuer key where `gatepass dev` keeps it, in a scratch working directory.
    const { privateKey } = await generateKeyPair("RS256", { extractable: true });
    const dir = path.join(work, ".wrangler/gatepass-dev");
    await mkdir(dir, { recursive: true });
    await writeFile(
      path.join(dir, "local-gitlab.private.jwk.json"),
      JSON.stringify({ ...(await exportJWK(privateKey)), kid: "k1", alg: "RS256" }),
    );
    // As a process, in a working directory of its own (`gatepass dev` keeps its issuer key under ./.wrangler).
    const result = await gatepassProcess(["dev", "token", "--protected", "false"], { cwd: work });
    expect(result.code).toBe(0);
    expect(decodeJwt(result.stdout.trim())).toMatchObject({ ref_protected: "false", ref_type: "branch" });
  });

  it("--kind github mints GitHub Actions' claims from the local-github stand-in (policies/github.yaml), --event included", async () => {
    // The key written by the test above (same scratch working directory).
    const result = await gatepassProcess(["dev", "token", "--kind", "github", "--event", "pull_request_target"], {
      cwd: work,
    });
    expect(result.code, result.stderr).toBe(0);
    const claims = decodeJwt(result.stdout.trim());
    expect(claims).toMatchObject({
      iss: "http://127.0.0.1:8789/_services/token",
      aud: "http://127.0.0.1:8787",
      repository: "platform/infra",
      repository_id: "801891",
      repository_owner: "platform",
      ref: "refs/heads/main",
      ref_protected: "true",
      event_name: "pull_request_target",
      head_ref: "feature",
      base_ref: "main",
    });
    expect(claims).not.toHaveProperty("project_id");
    expect((await gatepass(["dev", "token", "--kind", "circleci"])).stderr).toMatch(
      /^gatepass: --kind takes gitlab or github/,
    );
  });
});

describe("YAML syntax errors at the command line", () => {
  it("policies validate prints one file:line:col line at an unclosed [, then the parser's detail", async () => {
    const dir = path.join(work, "policies");
    await cp(path.join(ROOT, "policies"), dir, { recursive: true });
    const rules = await readFile(path.join(dir, "rules.yaml"), "utf8");
    await writeFile(
      path.join(dir, "rules.yaml"),
      rules.replace("allow: [gcp-deployer, aws-readonly]", "allow: [gcp-deployer, aws-readonly"),
    );
    const line = rules.slice(0, rules.indexOf("allow: [gcp-deployer, aws-readonly]")).split("\n").length;
    const result = await gatepass(["policies", "validate", "--dir", dir]);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      `rules.yaml:${line}:12: error: this '[' is never closed with ']' (YAML: Flow sequence in block collection must be sufficiently indented and end with a ])`,
      "policies are invalid: 1 error(s)",
    ]);
  });
});

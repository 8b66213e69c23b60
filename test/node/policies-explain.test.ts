// `gatepass policies explain` for scripts and for admins moving rules from paths to ids: exit 0 when
// every target shown is allowed, 1 when one is denied, 2 on usage; the job's ids and each rule's scope
// are printed. Runs against the example policies; no storage is involved.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INFRA_MAIN as INFRA_MAIN_CLAIMS } from "../worker/policy/fixtures";
import { gatepassInProcess, gatepassProcess } from "../support/cli";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** In process (test/support/cli.ts); the last exit-code test runs it as a script would. */
const explain = (...args: string[]) => gatepassInProcess("policies", "explain", ...args);

/** Protected main of platform/infra, as GitLab sends it. */
const INFRA_MAIN = { iss: "https://gitlab.example.com", ...INFRA_MAIN_CLAIMS };

let work: string;
const file = async (name: string, content: string) => {
  const at = path.join(work, name);
  await writeFile(at, content);
  return at;
};
const claimsFile = (name: string, claims: Record<string, unknown>) => file(name, JSON.stringify(claims));

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-explain-"));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("policies explain: exit codes", () => {
  it("exits 0 when every target asked for is allowed, and 1 when one of them is denied", async () => {
    const claims = await claimsFile("main.json", INFRA_MAIN);
    const allowed = await explain("--claims", claims, "--target", "gcp-deployer", "--target", "vault-ci");
    expect([allowed.code, allowed.stderr]).toEqual([0, ""]);
    expect(allowed.stdout).toContain("gcp-deployer: ALLOW by rule infra-main-deploys");
    expect(allowed.stdout).toContain("vault-ci: ALLOW by rule ci-secrets");

    const oneDenied = await explain("--claims", claims, "--target", "gcp-deployer", "--target", "registry-push");
    expect(oneDenied.code).toBe(1);
    expect(oneDenied.stdout).toContain("registry-push: DENY");
    // Without --target every target is shown, and this job is not allowed all of them.
    expect((await explain("--claims", claims)).code).toBe(1);
  });

  it("exits 1 on DENY for a token file too", async () => {
    const payload = Buffer.from(JSON.stringify({ ...INFRA_MAIN, ref_protected: "false" })).toString("base64url");
    const token = await file("job.jwt", `eyJhbGciOiJSUzI1NiJ9.${payload}.c2ln\n`);
    const result = await explain("--token", token, "--target", "gcp-deployer");
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`ref_protected: token has "false", rule wants "true"`);
  });

  it("exits 2 on usage: no or both inputs, an unreadable claims file, an unknown target", async () => {
    const claims = await claimsFile("usage.json", INFRA_MAIN);
    const notJson = await file("not.json", "{ project_id: 1");
    for (const [args, message] of [
      [[], /give exactly one of --claims FILE .* or --token FILE/],
      [["--claims", claims, "--token", claims], /give exactly one of --claims FILE/],
      [["--claims", notJson], /--claims: the claims file is not JSON/],
      [["--claims", path.join(work, "absent.json")], /--claims: ENOENT/],
      [["--token", notJson], /--token: the token is not a compact JWT/],
      [["--claims", claims, "--target", "gcp-deployer", "--target", "nope"], /unknown target 'nope'; configured: /],
      [["--claims", claims, "--issuer", "nobody"], /--claims: unknown issuer 'nobody'/],
    ] as const) {
      const result = await explain(...args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(message);
      expect(result.stdout, args.join(" ")).toBe("");
    }
  });

  it("exits 1 when the policies are invalid, with their findings", async () => {
    const claims = await claimsFile("invalid.json", INFRA_MAIN);
    const dir = path.join(work, "policies");
    await mkdir(dir);
    await writeFile(path.join(dir, "rules.yaml"), "rules: [\n");
    const result = await explain("--claims", claims, "--dir", dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^rules\.yaml:1:8: error: this '\[' is never closed with '\]'/);
  });

  it("gives a script the same exit codes as a process: 1 on DENY, 0 on ALLOW", async () => {
    const claims = await claimsFile("process.json", INFRA_MAIN);
    const asProcess = (target: string) =>
      gatepassProcess(["policies", "explain", "--claims", claims, "--target", target], { cwd: ROOT });
    expect(await asProcess("registry-push")).toMatchObject({
      code: 1,
      stdout: expect.stringContaining("registry-push: DENY"),
    });
    expect(await asProcess("gcp-deployer")).toMatchObject({
      code: 0,
      stdout: expect.stringContaining("gcp-deployer: ALLOW"),
    });
  });
});

describe("policies explain: ids", () => {
  it("shows the job's project and namespace ids next to their paths", async () => {
    const result = await explain("--claims", await claimsFile("ids.json", INFRA_MAIN), "--target", "aws-readonly");
    expect(result.stdout).toContain(
      `job: project_id "101" (project_path "platform/infra"), namespace_id "10" (namespace_path "platform")`,
    );
    const missing = await explain(
      "--claims",
      await claimsFile("no-ids.json", { ...INFRA_MAIN, project_id: undefined, namespace_id: undefined }),
      "--target",
      "aws-readonly",
    );
    expect(missing.stdout).toContain(
      `job: project_id (missing) (project_path "platform/infra"), namespace_id (missing) (namespace_path "platform")`,
    );
  });

  it("shows each rule's project and namespace scope, saying which scope by path only", async () => {
    const result = await explain(
      "--claims",
      await claimsFile("scopes.json", INFRA_MAIN),
      "--target",
      "aws-readonly",
      "--target",
      "vault-ci",
    );
    expect(result.stdout).toContain(`  rule infra-main-deploys (scope project_id "101"): matches`);
    expect(result.stdout).toContain(
      `  rule platform-reads (scope namespace_path "platform/**", by path only): matches`,
    );
    expect(result.stdout).toContain(`  rule ci-secrets (scope namespace_id ["10","20"]): matches`);
  });
});

describe("policies explain: a GitHub Actions job (policies/github.yaml)", () => {
  it("prints the job's repository and owner ids next to their names, and each rule's scope in GitHub's claims", async () => {
    const claims = await claimsFile("github.json", {
      iss: "https://token.actions.githubusercontent.com",
      repository: "platform/infra",
      repository_id: "701",
      repository_owner: "platform",
      repository_owner_id: "70",
      ref: "refs/heads/main",
      ref_protected: "true",
      event_name: "pull_request_target",
      run_id: "1",
    });
    const result = await explain("--claims", claims, "--target", "gcp-deployer", "--target", "aws-readonly");
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      'job: repository_id "701" (repository "platform/infra"), repository_owner_id "70" (repository_owner "platform")',
    );
    expect(result.stdout).toContain('rule infra-github-main-deploys (scope repository_id "701"): does not match');
    expect(result.stdout).toContain('event_name: token has "pull_request_target"');
    expect(result.stdout).toContain("aws-readonly: ALLOW by rule platform-github-reads");
  });
});

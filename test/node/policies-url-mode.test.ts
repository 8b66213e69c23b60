// `gatepass policies plan|push|history|rollback --url`: the policy repository's pipeline side, against a
// real gatepass (`wrangler dev`, local KV/D1) and a stand-in GitLab serving its keys. The job
// authenticates with its own ID token from GATEPASS_ID_TOKEN; no wrangler, no Cloudflare token. The
// bootstrap push (admin side, once) runs in process against the local-wrangler stand-in before the
// Worker starts on the same state.
import { mkdtempSync, rmSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { closeLocalStorage } from "../../cli/wrangler";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { includeComponent } from "../support/component";
import { gatepassInProcess, gatepassProcess, type CliResult } from "../support/cli";
import { createTestKey, gitlabClaims, jwksOf, signToken, type TestKey } from "../support/tokens";
import { copyMigratedState, startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

const ISSUER = "https://gitlab.policy.example";
const AUDIENCE = "https://gatepass.example.com";
const TEMPLATE_TEXT = readFileSync(path.resolve("templates/policy-repo.gitlab-ci.yml"), "utf8");
const CLI = `${process.execPath} ${path.resolve("cli/gatepass.mjs")}`;
const dir = mkdtempSync(path.join(tmpdir(), "gatepass-url-mode-"));
const policies = path.join(dir, "policies");
let gatepass: WranglerDev;
let keys: Server;
let key: TestKey;

const RULES = (extra = "") => `rules:
  - name: policy-repo
    issuer: gitlab
    match: { project_id: "1234", ref_type: branch, ref: main, ref_protected: "true", pipeline_source: [push, web] }
    allow: [gatepass:policies-push, gatepass:policies-plan]
  - name: apps-read
    issuer: gitlab
    match: { project_path: "apps/**" }
    allow: [reader]
${extra}`;

const TESTS = `cases:
  - name: the policy repository pushes
    issuer: gitlab
    claims: { project_id: "1234", project_path: platform/policies, namespace_id: "72", namespace_path: platform, ref: main, ref_type: branch, ref_protected: "true", pipeline_source: push }
    expect: { "gatepass:policies-push": allow, reader: deny }
`;

async function writePolicies(extraRules = ""): Promise<void> {
  await writeFile(path.join(policies, "rules.yaml"), RULES(extraRules));
}

/** The job's ID token: a protected main-branch push pipeline of project 1234 (the policy repository). */
async function idToken(claims: Record<string, unknown> = {}): Promise<string> {
  return signToken(key, { ...gitlabClaims({ issuer: ISSUER, audience: AUDIENCE }), ...claims });
}

/** `gatepass ...` in process with the job's ID token in GATEPASS_ID_TOKEN and nothing else. */
async function asJob(token: string, ...args: string[]): Promise<CliResult> {
  vi.stubEnv("GATEPASS_ID_TOKEN", token);
  vi.stubEnv("GATEPASS_ADMIN_TOKEN", "");
  vi.stubEnv("CLOUDFLARE_API_TOKEN", "");
  return gatepassInProcess(...args).finally(() => vi.unstubAllEnvs());
}

beforeAll(async () => {
  key = await createTestKey();
  keys = createServer((req, res) => {
    if (req.url !== "/keys") return void res.writeHead(404).end();
    res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(jwksOf(key)));
  });
  await new Promise<void>((resolve) => keys.listen(0, "127.0.0.1", resolve));
  const keysUrl = `http://127.0.0.1:${(keys.address() as AddressInfo).port}/keys`;

  await mkdir(policies);
  await writeFile(
    path.join(policies, "issuers.yaml"),
    `issuers:\n  - name: gitlab\n    url: ${ISSUER}\n    audiences: [${AUDIENCE}]\n    keys: { source: jwks_uri, jwks_uri: "${keysUrl}" }\n`,
  );
  await writeFile(
    path.join(policies, "targets.yaml"),
    "targets:\n  - { name: reader, type: oidc, audience: https://reader.example.com }\n",
  );
  await writeFile(path.join(policies, "repo.test.yaml"), TESTS);
  await writePolicies();
  // Bootstrap, once, by the admin: the first version that grants the policy repository its capabilities.
  const state = path.join(dir, "state");
  await copyMigratedState(state);
  const pushed = await gatepassInProcess(
    "policies",
    "push",
    "--local",
    "--persist-to",
    state,
    "--dir",
    policies,
    "--by",
    "bootstrap",
  );
  expect(pushed.code, pushed.stderr).toBe(0);
  await closeLocalStorage();
  gatepass = await startWranglerDev({
    persistTo: state,
    vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development" }),
  });
}, 240_000);

afterAll(async () => {
  await gatepass?.stop();
  keys?.closeAllConnections();
  await new Promise((resolve) => keys?.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe("policies --url with the job's ID token", () => {
  it("plans a change: the new rule and the identities it changes, as markdown", async () => {
    await writePolicies(`  - name: apps-deploy-reader
    issuer: gitlab
    match: { project_path: "deploy/**" }
    allow: [reader]
`);
    const plan = await asJob(
      await idToken(),
      "policies",
      "plan",
      "--url",
      gatepass.url,
      "--dir",
      policies,
      "--markdown",
    );
    expect([0, 3], plan.stderr).toContain(plan.code);
    expect(plan.stdout).toContain("apps-deploy-reader");
  });

  it("pushes: the Worker validates, tests and writes; history shows the new version active, pushed by the pipeline", async () => {
    const pushed = await asJob(await idToken(), "policies", "push", "--url", gatepass.url, "--dir", policies);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toMatch(/^pushed policy version [0-9a-f]{64} .* by ci:gitlab:1234:555001$/m);
    const version = /version ([0-9a-f]{64})/.exec(pushed.stdout)![1]!;
    const history = await asJob(await idToken(), "policies", "history", "--url", gatepass.url);
    expect(history.stdout).toMatch(new RegExp(`^\\* ${version} .* ci:gitlab:1234:555001 `, "m"));
  });

  it("refuses without the token variable, and a job the policy does not grant the capability (admin_forbidden)", async () => {
    const missing = await asJob("", "policies", "history", "--url", gatepass.url);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/GATEPASS_ID_TOKEN/);
    const mr = await asJob(
      await idToken({ pipeline_source: "merge_request_event", ref_protected: "false" }),
      "policies",
      "push",
      "--url",
      gatepass.url,
      "--dir",
      policies,
    );
    expect(mr.code).toBe(1);
    expect(mr.stderr).toMatch(/admin_forbidden.*gatepass:policies-push/);
  });

  it("takes two pushes at once: both answer (pushed or busy), one version ends active, pushed by one of them", async () => {
    const dirOne = path.join(dir, "one");
    const dirTwo = path.join(dir, "two");
    for (const [target, extra] of [
      [dirOne, "one"],
      [dirTwo, "two"],
    ] as const) {
      await mkdir(target);
      for (const file of ["issuers.yaml", "targets.yaml", "repo.test.yaml"])
        await writeFile(path.join(target, file), await readFile(path.join(policies, file)));
      await writeFile(
        path.join(target, "rules.yaml"),
        RULES(
          `  - { name: race-${extra}, issuer: gitlab, match: { project_path: "race/${extra}/**" }, allow: [reader] }\n`,
        ),
      );
    }
    const env = () => ({ PATH: process.env.PATH, HOME: dir });
    const [one, two] = await Promise.all([
      idToken({ job_id: "7001" }).then((t) =>
        gatepassProcess(["policies", "push", "--url", gatepass.url, "--dir", dirOne], {
          env: { ...env(), GATEPASS_ID_TOKEN: t },
        }),
      ),
      idToken({ job_id: "7002" }).then((t) =>
        gatepassProcess(["policies", "push", "--url", gatepass.url, "--dir", dirTwo], {
          env: { ...env(), GATEPASS_ID_TOKEN: t },
        }),
      ),
    ]);
    for (const result of [one, two]) expect([0, 3], result.stderr).toContain(result.code);
    expect([one.code, two.code]).toContain(0);
    const history = await asJob(await idToken(), "policies", "history", "--url", gatepass.url);
    const active = history.stdout.split("\n").filter((line) => line.startsWith("* "));
    expect(active).toHaveLength(1);
    const winner = [one, two].filter((r) => r.code === 0).map((r) => /version ([0-9a-f]{64})/.exec(r.stdout)![1]!);
    expect(winner).toContain(active[0]!.split(/\s+/)[1]);
  });
});

/** A template job's before_script and script under dash in `cwd` (the repository checkout), as a runner would. */
function runJob(
  job: string,
  cwd: string,
  env: Record<string, string>,
  inputs: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const jobs = includeComponent(
    { url: gatepass.url, audience: AUDIENCE, cli: CLI, ...inputs },
    TEMPLATE_TEXT,
  ) as Record<string, { before_script?: string[]; script: string[]; extends?: string }>;
  const base = jobs[".gatepass-policies"]!;
  const script = [...(base.before_script ?? []), ...jobs[job]!.script].join("\n");
  return new Promise((resolve) => {
    const child = spawn("dash", ["-c", script], { cwd, env: { PATH: process.env.PATH!, HOME: dir, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe("templates/policy-repo.gitlab-ci.yml under dash against a local gatepass", () => {
  it("merge requests validate and test, and a lint error fails the job", async () => {
    const ok = await runJob("gatepass-policies-check", dir, {});
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/policies are valid/);
    expect(ok.stdout).toMatch(/1\/1 policy test cases passed/);
    const bad = path.join(dir, "bad");
    await mkdir(path.join(bad, "policies"), { recursive: true });
    for (const file of ["issuers.yaml", "targets.yaml"])
      await writeFile(path.join(bad, "policies", file), await readFile(path.join(policies, file)));
    await writeFile(
      path.join(bad, "policies", "rules.yaml"),
      'rules:\n  - { name: loose, issuer: gitlab, match: { project_id: "9" }, allow: [gatepass:policies-push] }\n',
    );
    const refused = await runJob("gatepass-policies-check", bad, {});
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/capability-unprotected-ref/);
  });

  it("merge requests plan their change against the target branch's policies, read from git, reaching no gatepass", async () => {
    // A checkout whose origin has the target branch `main` with the policies as they are, and the
    // merge request's change (a new rule) in its working tree.
    const origin = path.join(dir, "origin.git");
    const checkout = path.join(dir, "mr");
    const git = (cwd: string, ...args: string[]) =>
      execFileSync(
        "git",
        ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main", ...args],
        { cwd, stdio: "pipe" },
      );
    await mkdir(checkout, { recursive: true });
    git(dir, "init", "--quiet", "--bare", origin);
    await mkdir(path.join(checkout, "policies"));
    for (const file of await readdir(policies))
      await writeFile(path.join(checkout, "policies", file), await readFile(path.join(policies, file)));
    git(checkout, "init", "--quiet");
    git(checkout, "add", "policies");
    git(checkout, "commit", "--quiet", "-m", "policies");
    git(checkout, "remote", "add", "origin", origin);
    git(checkout, "push", "--quiet", "origin", "HEAD:main");
    const rules = await readFile(path.join(checkout, "policies", "rules.yaml"), "utf8");
    await writeFile(
      path.join(checkout, "policies", "rules.yaml"),
      `${rules}  - name: ops-read\n    issuer: gitlab\n    match: { project_path: "ops/**" }\n    allow: [reader]\n`,
    );

    // No URL reaches the job's plan: a gatepass that answers nothing would do.
    const planned = await runJob("gatepass-policies-check", checkout, { CI_MERGE_REQUEST_TARGET_BRANCH_NAME: "main" });
    expect(planned.code, planned.stderr).toBe(0);
    expect(planned.stdout).toContain("### gatepass policy plan");
    expect(planned.stdout).toMatch(/`base [0-9a-f]{12}` → `local [0-9a-f]{12}`/);
    expect(planned.stdout).toContain("rule ops-read: added");
    expect(await readFile(path.join(checkout, "gatepass-plan.md"), "utf8")).toContain("rule ops-read: added");

    // A target branch without the policies directory: the plan is left out, said so, and the job passes.
    const bare = await runJob("gatepass-policies-check", checkout, {
      CI_MERGE_REQUEST_TARGET_BRANCH_NAME: "no-such-branch",
    });
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.stderr).toContain("gatepass: the target branch no-such-branch has no policies to plan against");
  });

  it("the protected default branch plans (log and artifact show the change) and pushes with its own ID token", async () => {
    await writePolicies(
      `  - { name: template-added, issuer: gitlab, match: { project_path: "template/**" }, allow: [reader] }\n`,
    );
    const token = await idToken({ job_id: "8001" });
    const pushed = await runJob("gatepass-policies-push", dir, { GATEPASS_ID_TOKEN: token });
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toContain("template-added");
    expect(readFileSync(path.join(dir, "gatepass-plan.md"), "utf8")).toContain("template-added");
    expect(pushed.stdout).toMatch(/pushed policy version [0-9a-f]{64} .* by ci:gitlab:1234:8001/);
  });

  it("refuses to run when a GATEPASS_URL variable is set, before anything is sent", async () => {
    const res = await runJob("gatepass-policies-push", dir, {
      GATEPASS_ID_TOKEN: await idToken(),
      GATEPASS_URL: "https://attacker.example",
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/GATEPASS_URL is set/);
  });

  it("two push jobs at once are safe: each pushes or waits its turn, one version ends active", async () => {
    const [one, two] = await Promise.all([
      idToken({ job_id: "9001" }).then((t) => runJob("gatepass-policies-push", dir, { GATEPASS_ID_TOKEN: t })),
      idToken({ job_id: "9002" }).then((t) => runJob("gatepass-policies-push", dir, { GATEPASS_ID_TOKEN: t })),
    ]);
    for (const res of [one, two]) expect([0, 3], res.stderr).toContain(res.code);
    const history = await asJob(await idToken(), "policies", "history", "--url", gatepass.url);
    expect(history.stdout.split("\n").filter((line) => line.startsWith("* "))).toHaveLength(1);
  });
});

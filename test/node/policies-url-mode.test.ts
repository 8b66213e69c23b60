// `gatepass policies plan|push|history|rollback --url`: the policy repository's pipeline side, against a
// real gatepass (`wrangler dev`, local KV/D1) and a stand-in GitLab serving its keys. The job
// authenticates with its own ID token from GATEPASS_ID_TOKEN; no wrangler, no Cloudflare token. The
// bootstrap push (admin side, once) runs in process against the local-wrangler stand-in before the
// Worker starts on the same state.
import { mkdtempSync, rmSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { gatepassInProcess, gatepassProcess, type CliResult } from "../support/cli";
import { closeLocalWrangler } from "../support/local-wrangler";
import { createTestKey, gitlabClaims, jwksOf, signToken, type TestKey } from "../support/tokens";
import { copyMigratedState, startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

vi.mock("../../cli/wrangler", async (original) => (await import("../support/local-wrangler")).localWranglerModule(await original()));

const ISSUER = "https://gitlab.policy.example";
const AUDIENCE = "https://gatepass.example.com";
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
  await writeFile(path.join(policies, "issuers.yaml"), `issuers:\n  - name: gitlab\n    url: ${ISSUER}\n    audiences: [${AUDIENCE}]\n    keys: { source: jwks_uri, jwks_uri: "${keysUrl}" }\n`);
  await writeFile(path.join(policies, "targets.yaml"), "targets:\n  - { name: reader, type: oidc, audience: https://reader.example.com }\n");
  await writeFile(path.join(policies, "repo.test.yaml"), TESTS);
  await writePolicies();
  // Bootstrap, once, by the admin: the first version that grants the policy repository its capabilities.
  const state = path.join(dir, "state");
  await copyMigratedState(state);
  const pushed = await gatepassInProcess("policies", "push", "--local", "--persist-to", state, "--dir", policies, "--by", "bootstrap");
  expect(pushed.code, pushed.stderr).toBe(0);
  await closeLocalWrangler();
  gatepass = await startWranglerDev({ persistTo: state, vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development" }) });
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
    const plan = await asJob(await idToken(), "policies", "plan", "--url", gatepass.url, "--dir", policies, "--markdown");
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
    const mr = await asJob(await idToken({ pipeline_source: "merge_request_event", ref_protected: "false" }), "policies", "push", "--url", gatepass.url, "--dir", policies);
    expect(mr.code).toBe(1);
    expect(mr.stderr).toMatch(/admin_forbidden.*gatepass:policies-push/);
  });

  it("takes two pushes at once: both answer (pushed or busy), one version ends active, pushed by one of them", async () => {
    const dirOne = path.join(dir, "one");
    const dirTwo = path.join(dir, "two");
    for (const [target, extra] of [[dirOne, "one"], [dirTwo, "two"]] as const) {
      await mkdir(target);
      for (const file of ["issuers.yaml", "targets.yaml", "repo.test.yaml"]) await writeFile(path.join(target, file), await readFile(path.join(policies, file)));
      await writeFile(path.join(target, "rules.yaml"), RULES(`  - { name: race-${extra}, issuer: gitlab, match: { project_path: "race/${extra}/**" }, allow: [reader] }\n`));
    }
    const env = () => ({ PATH: process.env.PATH, HOME: dir });
    const [one, two] = await Promise.all([
      idToken({ job_id: "7001" }).then((t) => gatepassProcess(["policies", "push", "--url", gatepass.url, "--dir", dirOne], { env: { ...env(), GATEPASS_ID_TOKEN: t } })),
      idToken({ job_id: "7002" }).then((t) => gatepassProcess(["policies", "push", "--url", gatepass.url, "--dir", dirTwo], { env: { ...env(), GATEPASS_ID_TOKEN: t } })),
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

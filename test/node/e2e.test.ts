// End to end, as an admin and a CI job would meet gatepass: real `wrangler dev` (workerd, local
// KV/D1), policies pushed by the CLI, a stand-in GitLab issuer and AWS STS on loopback, and the
// GitLab CI template's own shell snippet run by a real shell (its retry and printing rules in detail:
// format-shell.test.ts).
import { execFile, spawn } from "node:child_process";
import { generateKeyPairSync, sign, type JsonWebKey } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret, serializeSecret } from "../../src/signing-keys/signing-key-rotation";
import { startStandins, type Standins } from "../support/standins";
import { upstreamsHandler } from "../support/standins/upstreams";
import { includeComponent } from "../support/component";
import { copyMigratedState, startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

const ROLE = "arn:aws:iam::111122223333:role/deploy";
let standins: Standins;
let gatepass: WranglerDev;
let dir: string;
let mintCiToken: (claims: Record<string, unknown>) => string;
let scenario: (faults?: Record<string, unknown>) => Promise<Response>;
let upstreamRequests: () => Promise<unknown[]>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "gatepass-e2e-"));
  standins = await startStandins([upstreamsHandler]);
  const up = `${standins.url}/up/${crypto.randomUUID()}`;
  const ci = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ciJwk = { ...(ci.publicKey.export({ format: "jwk" }) as JsonWebKey), kid: "ci-1", alg: "RS256", use: "sig" };
  mintCiToken = (claims) => {
    const now = Math.floor(Date.now() / 1000);
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const input = `${part({ alg: "RS256", typ: "JWT", kid: "ci-1" })}.${part({
      iss: `${up}/ci`,
      aud: "gatepass-e2e",
      sub: "project_path:platform/infra:ref_type:branch:ref:main",
      iat: now,
      nbf: now - 5,
      exp: now + 600,
      jti: crypto.randomUUID(),
      namespace_id: "10",
      namespace_path: "platform",
      project_id: "42",
      project_path: "platform/infra",
      user_id: "7",
      user_login: "alice",
      pipeline_id: "900",
      pipeline_source: "push",
      job_id: "1234",
      ref: "main",
      ref_type: "branch",
      ref_protected: "true",
      ...claims,
    })}`;
    return `${input}.${sign("sha256", Buffer.from(input), ci.privateKey).toString("base64url")}`;
  };

  // The admin's side: policy files, pushed with the CLI into local state.
  const policies = path.join(dir, "policies");
  const state = path.join(dir, "state");
  await mkdir(policies);
  await writeFile(
    path.join(policies, "gatepass.yaml"),
    [
      "issuers:",
      "  - name: ci",
      `    url: ${up}/ci`,
      "    audiences: [gatepass-e2e]",
      "targets:",
      "  - name: aws-deploy",
      "    type: aws",
      `    role_arn: ${ROLE}`,
      "    region: eu-west-1",
      "    privileged: true",
      "  - name: oidc-rp",
      "    type: oidc",
      "    audience: https://rp.example.com",
      "rules:",
      "  - name: infra-main",
      "    issuer: ci",
      '    match: { project_path: platform/infra, ref_type: branch, ref: main, ref_protected: "true", pipeline_source: [push, web, schedule] }',
      "    allow: [aws-deploy, oidc-rp]",
      "    max_uses_per_job: 1",
      "",
    ].join("\n"),
  );
  await copyMigratedState(state);
  await promisify(execFile)(process.execPath, [
    path.resolve("cli/gatepass.mjs"),
    "policies",
    "push",
    "--local",
    "--persist-to",
    state,
    "--dir",
    policies,
    "--by",
    "e2e",
  ]);

  gatepass = await startWranglerDev({
    persistTo: state,
    vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development", AWS_STS_URL: `${up}/aws/{region}/` }),
    secrets: {
      GATEPASS_SIGNING_KEYS: serializeSecret(await generateSecret(["ES256"], Math.floor(Date.now() / 1000) - 600)),
    },
  });
  scenario = (faults = {}) =>
    fetch(`${up}/_control`, {
      method: "PUT",
      body: JSON.stringify({
        trust: { issuer: gatepass.url },
        ciJwks: { keys: [ciJwk] },
        aws: { roles: { [ROLE]: { sub: "target:aws-deploy", aud: "sts.amazonaws.com" } } },
        faults,
      }),
    });
  upstreamRequests = async () => (await (await fetch(`${up}/_requests`)).json()) as unknown[];
  await scenario();
}, 180_000);

afterAll(async () => {
  await gatepass?.stop();
  await standins?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * The `.gatepass` hidden job's before_script, exactly as GitLab would run it, then `env`. With more
 * than one target it runs once per target in the same shell, as a job calling gatepass again would.
 */
async function runTemplate(
  token: string,
  ...targets: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const template = includeComponent({ url: gatepass.url });
  const script = [
    ...targets.flatMap((target) => [`GATEPASS_TARGET='${target}'`, ...template[".gatepass"]!.before_script!]),
    "env",
  ].join("\n");
  return new Promise((resolve) => {
    const child = spawn("sh", ["-e", "-c", script], {
      env: { PATH: process.env.PATH, GATEPASS_URL: gatepass.url, GATEPASS_ID_TOKEN: token },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function parseEnv(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout.split("\n").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

describe("end to end: CLI-pushed policy, wrangler dev, the GitLab template in a real shell", () => {
  it("a protected main pipeline gets AWS credentials into its environment", async () => {
    const { code, stdout, stderr } = await runTemplate(mintCiToken({}), "aws-deploy");
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const env = parseEnv(stdout);
    expect(env.AWS_ACCESS_KEY_ID).toMatch(/^ASIA/);
    expect(env.AWS_SECRET_ACCESS_KEY).toBeTruthy();
    expect(env.AWS_SESSION_TOKEN).toBeTruthy();
    expect(env).not.toHaveProperty("gatepass_env");
  });

  it("a merge-request pipeline is refused and the job fails with gatepass's explanation", async () => {
    const { code, stdout, stderr } = await runTemplate(
      mintCiToken({ pipeline_source: "merge_request_event" }),
      "aws-deploy",
    );
    expect(code).not.toBe(0);
    expect(stdout).not.toContain("AWS_ACCESS_KEY_ID");
    expect(stderr).toContain('"code":"policy_denied"');
  });

  it("an issued ID token arrives as GATEPASS_ISSUED_ID_TOKEN, so the job's own token still works for its next call", async () => {
    const token = mintCiToken({ job_id: "2001" });
    const { code, stdout, stderr } = await runTemplate(token, "oidc-rp", "aws-deploy");
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const env = parseEnv(stdout);
    expect(env.GATEPASS_ID_TOKEN).toBe(token);
    const claims = JSON.parse(
      Buffer.from(env.GATEPASS_ISSUED_ID_TOKEN!.split(".")[1]!, "base64url").toString(),
    ) as Record<string, unknown>;
    expect(claims).toMatchObject({ iss: gatepass.url, sub: "target:oidc-rp", aud: "https://rp.example.com" });
    expect(env.AWS_ACCESS_KEY_ID).toMatch(/^ASIA/);
  });

  it("a 502 from the cloud is not retried: with max_uses_per_job 1 the job sees upstream_unavailable, not use_limit_exceeded", async () => {
    await scenario({
      "aws-sts": [1, 2, 3].map(() => ({ status: 502, body: "<html>bad gateway</html>", contentType: "text/html" })),
    });
    try {
      const { code, stdout, stderr } = await runTemplate(mintCiToken({ job_id: "2002" }), "aws-deploy");
      expect(code).not.toBe(0);
      expect(stdout).not.toContain("AWS_ACCESS_KEY_ID");
      expect(stderr).toMatch(/^gatepass: HTTP 502: \{.*"code":"upstream_unavailable".*\}\n$/);
      expect(stderr).not.toContain("use_limit_exceeded");
      // gatepass's own three attempts upstream, for the template's single request.
      expect(await upstreamRequests()).toHaveLength(3);
    } finally {
      await scenario();
    }
  });

  it("the CLI-pushed version is the one the Worker serves", async () => {
    const res = await fetch(`${gatepass.url}/v1/whoami`, { headers: { Authorization: `Bearer ${mintCiToken({})}` } });
    const body = (await res.json()) as { policy_version: string; grants: Array<{ target: string }> };
    expect([...body.grants].sort((a, b) => a.target.localeCompare(b.target))).toEqual([
      { target: "aws-deploy", rule: "infra-main" },
      { target: "oidc-rp", rule: "infra-main" },
    ]);
    const { stdout } = await promisify(execFile)(process.execPath, [
      path.resolve("cli/gatepass.mjs"),
      "policies",
      "history",
      "--local",
      "--persist-to",
      gatepass.persistTo,
    ]);
    expect(stdout).toContain(body.policy_version.slice(0, 12));
  });
});

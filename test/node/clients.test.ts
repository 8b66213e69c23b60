// gatepass under `wrangler dev` (real workerd, local KV/D1) consumed by real clients:
// - an independent verifier (node:crypto, not jose) validating minted tokens through discovery;
// - google-auth-library consuming the `format=gcloud` external_account config;
// - the AWS SDK's credential_process provider and the AWS CLIs (v1, v2: each one found) running the
//   documented `credential_process` command, granted and refused.
// The cloud stand-ins fetch gatepass's discovery and JWKS over HTTP, as the real clouds do.
import { fromProcess } from "@aws-sdk/credential-provider-process";
import { createPublicKey, generateKeyPairSync, sign, verify, type JsonWebKey } from "node:crypto";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ExternalAccountClient } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret, serializeSecret } from "../../src/signing-keys/signing-key-rotation";
import { ACTIVE_SNAPSHOT_KEY } from "../../src/policy/active-policy";
import type { IssuerConfig, Target } from "../../src/types";
import { includeComponent } from "../support/component";
import { startStandins, type Standins } from "../support/standins";
import { upstreamsHandler, type CapturedRequest } from "../support/standins/upstreams";
import { startWranglerDev, type WranglerDev } from "../support/wrangler-dev";
import { upstreamUrlVars } from "../support/standins/urls";
import { buildTestSnapshot } from "../worker/exchange/policy-snapshot";

const WIP = "projects/123456/locations/global/workloadIdentityPools/ci-pool/providers/gatepass";
const SA = "deployer@proj.iam.gserviceaccount.com";
const ROLE = "arn:aws:iam::111122223333:role/deploy";

let standins: Standins;
let gatepass: WranglerDev;
let dir: string;
let ns: string;
let ciToken: string;
let signingKids: string[];

const base = { privileged: false, signing_alg: "ES256" as const, max_lifetime_seconds: 3600 };
const targets: Target[] = [
  {
    ...base,
    name: "gcp-deploy",
    type: "gcp",
    workload_identity_provider: WIP,
    service_account: SA,
    scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    audience: `//iam.googleapis.com/${WIP}`,
  },
  { ...base, name: "aws-deploy", type: "aws", role_arn: ROLE, region: "eu-west-1", audience: "sts.amazonaws.com" },
  { ...base, name: "oidc-es", type: "oidc", audience: "https://rp.example.com" },
  { ...base, name: "oidc-rs", type: "oidc", audience: "https://rp.example.com", signing_alg: "RS256" },
];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "gatepass-clients-"));
  standins = await startStandins([upstreamsHandler]);
  ns = crypto.randomUUID();
  const up = `${standins.url}/up/${ns}`;

  // The CI issuer: an RSA key whose public half the stand-in serves through discovery.
  const ci = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ciJwk = { ...(ci.publicKey.export({ format: "jwk" }) as JsonWebKey), kid: "ci-1", alg: "RS256", use: "sig" };
  const issuer: IssuerConfig = {
    name: "ci",
    url: `${up}/ci`,
    kind: "gitlab",
    aliases: [],
    audiences: ["gatepass"],
    algorithms: ["RS256"],
    keys: { source: "discovery" },
    max_token_age_seconds: 3600,
    accept_legacy_ci_job_jwt: false,
  };
  const now = Math.floor(Date.now() / 1000);
  ciToken = signRs256(ci.privateKey, {
    iss: issuer.url,
    aud: "gatepass",
    sub: "project_path:platform/infra:ref_type:branch:ref:main",
    iat: now,
    nbf: now - 5,
    exp: now + 900,
    jti: crypto.randomUUID(),
    namespace_id: "10",
    namespace_path: "platform",
    project_id: "42",
    project_path: "platform/infra",
    user_id: "7",
    user_login: "alice",
    user_email: "alice@example.com",
    pipeline_id: "900",
    pipeline_source: "push",
    job_id: "1234",
    ref: "main",
    ref_type: "branch",
    ref_protected: "true",
  });

  const snapshot = await buildTestSnapshot({
    issuers: [issuer],
    targets,
    rules: [
      {
        name: "infra-main",
        issuer: "ci",
        match: { project_path: "platform/infra", ref_type: "branch", ref: "main", ref_protected: "true" },
        allow: targets.map((t) => t.name),
      },
    ],
  });
  const secret = await generateSecret(["ES256", "RS256"], now - 600);
  signingKids = secret.keys.map((k) => k.kid).sort();
  gatepass = await startWranglerDev({
    vars: (url) => ({
      GATEPASS_ISSUER: url,
      GATEPASS_ENV: "development",
      ...upstreamUrlVars(up),
    }),
    secrets: { GATEPASS_SIGNING_KEYS: serializeSecret(secret) },
    kv: [{ binding: "POLICIES", key: ACTIVE_SNAPSHOT_KEY, value: snapshot }],
  });

  // The clouds trust gatepass through its discovery, fetched over HTTP (no uploaded keys).
  await fetch(`${up}/_control`, {
    method: "PUT",
    body: JSON.stringify({
      trust: { issuer: gatepass.url },
      ciJwks: { keys: [ciJwk] },
      gcp: {
        provider: WIP,
        condition: { project_path: "platform/infra" },
        serviceAccounts: { [SA]: ["target:gcp-deploy"] },
      },
      aws: { roles: { [ROLE]: { sub: "target:aws-deploy", aud: "sts.amazonaws.com" } } },
    }),
  });
}, 180_000);

afterAll(async () => {
  await gatepass?.stop();
  await standins?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function credentials(target: string, form: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gatepass.url}/v1/credentials/${target}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ciToken}`, "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
}

async function captured(): Promise<CapturedRequest[]> {
  return (await (await fetch(`${standins.url}/up/${ns}/_requests`)).json()) as CapturedRequest[];
}

describe("independent verifier (node:crypto) through discovery", () => {
  it.each([
    ["oidc-es", "ES256"],
    ["oidc-rs", "RS256"],
  ])("validates a %s token (%s)", async (target, alg) => {
    const res = await credentials(target, { lifetime: "300" });
    expect(res.status).toBe(200);
    const { id_token } = (await res.json()) as { id_token: string };

    const discovery = (await (await fetch(`${gatepass.url}/.well-known/openid-configuration`)).json()) as {
      issuer: string;
      jwks_uri: string;
      id_token_signing_alg_values_supported: string[];
    };
    expect(discovery.issuer).toBe(gatepass.url);
    expect(discovery.id_token_signing_alg_values_supported).toContain(alg);
    const jwks = (await (await fetch(discovery.jwks_uri)).json()) as {
      keys: (JsonWebKey & { kid: string; alg: string })[];
    };
    // The secret from the env file is what signs (not development's ephemeral keys).
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual(signingKids);

    const [h, p, s] = id_token.split(".") as [string, string, string];
    const header = JSON.parse(Buffer.from(h, "base64url").toString()) as { alg: string; kid: string; typ: string };
    expect(header).toMatchObject({ alg, typ: "JWT" });
    const jwk = jwks.keys.find((k) => k.kid === header.kid)!;
    expect(jwk.alg).toBe(alg);
    expect(jwk).not.toHaveProperty("d");
    const key = createPublicKey({ key: jwk, format: "jwk" });
    const ok = verify(
      "sha256",
      Buffer.from(`${h}.${p}`),
      alg === "ES256" ? { key, dsaEncoding: "ieee-p1363" } : key,
      Buffer.from(s, "base64url"),
    );
    expect(ok).toBe(true);

    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const now = Math.floor(Date.now() / 1000);
    expect(claims).toMatchObject({
      iss: gatepass.url,
      sub: `target:${target}`,
      aud: "https://rp.example.com",
      rule: "infra-main",
      project_path: "platform/infra",
    });
    for (const t of ["iat", "nbf", "exp"]) expect(Number.isInteger(claims[t])).toBe(true);
    expect(claims.exp as number).toBeGreaterThan(now);
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);

    // A tampered payload must not verify.
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: "target:other" })).toString("base64url");
    expect(
      verify(
        "sha256",
        Buffer.from(`${h}.${forged}`),
        alg === "ES256" ? { key, dsaEncoding: "ieee-p1363" } : key,
        Buffer.from(s, "base64url"),
      ),
    ).toBe(false);
  });
});

describe("google-auth-library with format=gcloud", () => {
  it("fetches an access token through gatepass's STS endpoint", async () => {
    const tokenFile = path.join(dir, "ci-token");
    await writeFile(tokenFile, ciToken);
    const res = await credentials("gcp-deploy", { format: "gcloud", token_file: tokenFile });
    expect(res.status).toBe(200);
    const config = await res.json();

    const client = ExternalAccountClient.fromJSON(config as Parameters<typeof ExternalAccountClient.fromJSON>[0]);
    expect(client).not.toBeNull();
    const { token } = await client!.getAccessToken();
    expect(token).toMatch(/^ya29\.sa-/);

    const requests = await captured();
    const sts = requests.filter((r) => r.service === "gcp-sts").at(-1)!;
    expect(sts.claims).toMatchObject({ iss: gatepass.url, sub: "target:gcp-deploy" });
    expect(requests.filter((r) => r.service === "gcp-iam").at(-1)!.path).toContain(
      `${encodeURIComponent(SA)}:generateAccessToken`,
    );
  });

  it("takes the config the GitLab component's gcloud format installs, run by dash from another directory", async () => {
    const project = await mkdtemp(path.join(dir, "project-"));
    const job = includeComponent({ url: gatepass.url, target: "gcp-deploy", format: "gcloud" })[".gatepass"]!;
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>(
      (resolve) => {
        const child = spawn(
          "dash",
          ["-e", "-c", [...job.before_script!, 'printf "%s" "$GOOGLE_APPLICATION_CREDENTIALS"'].join("\n")],
          {
            cwd: tmpdir(),
            env: { PATH: process.env.PATH, ...job.variables, CI_PROJECT_DIR: project, GATEPASS_ID_TOKEN: ciToken },
          },
        );
        let out = "";
        let err = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
        child.on("close", (exit) => resolve({ stdout: out, stderr: err, code: exit }));
      },
    );
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout).toBe(path.join(project, ".gatepass/gcp-deploy.json"));
    const config = JSON.parse(await readFile(stdout, "utf8")) as { credential_source: { file: string } };
    expect(config.credential_source.file).toBe(path.join(project, ".gatepass/ci-token"));
    const client = ExternalAccountClient.fromJSON(config as Parameters<typeof ExternalAccountClient.fromJSON>[0])!;
    expect((await client.getAccessToken()).token).toMatch(/^ya29\.sa-/);
  });

  it("works with the scopes Terraform asks for, granting the ones the target allows", async () => {
    const tokenFile = path.join(dir, "ci-token-terraform");
    await writeFile(tokenFile, ciToken);
    const config = await (await credentials("gcp-deploy", { format: "gcloud", token_file: tokenFile })).json();
    const client = ExternalAccountClient.fromJSON(config as Parameters<typeof ExternalAccountClient.fromJSON>[0])!;
    client.scopes = [
      "https://www.googleapis.com/auth/cloud-platform",
      "https://www.googleapis.com/auth/userinfo.email",
    ];
    expect((await client.getAccessToken()).token).toMatch(/^ya29\.sa-/);
    const iam = (await captured()).filter((r) => r.service === "gcp-iam").at(-1)!;
    expect(iam.body.scope).toEqual(["https://www.googleapis.com/auth/cloud-platform"]);
  });
});

// The credential_process line of docs/credentials.md, pointed at this gatepass and `target`: tested as documented.
async function documentedCredentialProcess(target: string): Promise<string> {
  const docs = await readFile(path.resolve("docs/credentials.md"), "utf8");
  const line = /^credential_process = (.+)$/m.exec(docs)?.[1];
  if (!line?.includes("https://gatepass.example.com/v1/credentials/aws-readonly"))
    throw new Error("docs/credentials.md has no credential_process line for aws-readonly");
  return line.replace(
    "https://gatepass.example.com/v1/credentials/aws-readonly",
    `${gatepass.url}/v1/credentials/${target}`,
  );
}

/** Writes an AWS config whose profiles run the documented command, and returns the environment that points at it. */
async function awsProfiles(): Promise<Record<string, string>> {
  const configFile = path.join(dir, "aws-config");
  const profiles = [
    `[profile gatepass]\ncredential_process = ${await documentedCredentialProcess("aws-deploy")}`,
    `[profile refused]\ncredential_process = ${await documentedCredentialProcess("aws-missing")}`,
  ];
  await writeFile(configFile, `${profiles.join("\n\n")}\n`);
  await writeFile(path.join(dir, "aws-credentials"), "");
  return {
    AWS_CONFIG_FILE: configFile,
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, "aws-credentials"),
    GATEPASS_ID_TOKEN: ciToken,
  };
}

const REFUSAL_SENTENCE = "No target named 'aws-missing' is configured.";

describe("AWS SDK credential_process", () => {
  const withEnv = async <T>(vars: Record<string, string>, run: () => Promise<T>): Promise<T> => {
    const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
    Object.assign(process.env, vars);
    try {
      return await run();
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  };

  it("loads credentials from format=credential_process with the documented command", async () => {
    const creds = await withEnv(await awsProfiles(), () => fromProcess({ profile: "gatepass" })());
    expect(creds.accessKeyId).toMatch(/^ASIA/);
    expect(creds.secretAccessKey).toBeTruthy();
    expect(creds.sessionToken).toMatch(/^FwoGZXIvYXdzE/);
    expect(creds.expiration!.getTime()).toBeGreaterThan(Date.now());
    const aws = (await captured()).filter((r) => r.service === "aws-sts").at(-1)!;
    expect(aws.body.RoleSessionName).toBe("gitlab-1234");
    expect(aws.claims).toMatchObject({ iss: gatepass.url, sub: "target:aws-deploy", aud: "sts.amazonaws.com" });
  });

  it("a refusal reaches the SDK's error with gatepass's code and sentence", async () => {
    const error = await withEnv(await awsProfiles(), () =>
      fromProcess({ profile: "refused" })().then(
        () => undefined,
        (err: unknown) => err as Error,
      ),
    );
    expect(error?.message).toContain('gatepass: {"');
    expect(error?.message).toContain('"code":"target_unknown"');
    expect(error?.message).toContain(REFUSAL_SENTENCE);
  });
});

/**
 * The AWS CLIs on this machine: v1 comes with the machine image (pip), v2 from Debian's `awscli`
 * (.ci/run installs it). Each one found runs the documented command, once granted and once refused.
 */
const awsClis = findAwsClis();

describe("AWS CLI credential_process (each CLI found on this machine)", () => {
  it("finds at least one AWS CLI (v1: pip's awscli, v2: Debian's awscli)", () => {
    expect(awsClis.map((cli) => cli.version)).not.toEqual([]);
  });

  it.each(awsClis.map((cli) => [cli.version, cli] as const))(
    "aws-cli %s: granted, it gets the credentials; refused, it shows gatepass's code and sentence",
    async (_version, cli) => {
      const env = { ...process.env, ...(await awsProfiles()), AWS_EC2_METADATA_DISABLED: "true", AWS_PAGER: "" };
      // v2 prints what credential_process returned; v1 has no export-credentials, but configure list resolves them.
      const granted =
        cli.major >= 2
          ? ["configure", "export-credentials", "--profile", "gatepass", "--format", "process"]
          : ["configure", "list", "--profile", "gatepass"];
      const ok = await runCli(cli.path, granted, env);
      expect(ok.code, ok.stderr).toBe(0);
      if (cli.major >= 2)
        expect(JSON.parse(ok.stdout)).toMatchObject({ Version: 1, AccessKeyId: expect.stringMatching(/^ASIA/) });
      else expect(ok.stdout).toMatch(/access_key\s+\*+\w{4}\s+custom-process/);

      // Credentials are resolved before any request is sent: the endpoint is never reached.
      const refused = await runCli(
        cli.path,
        [
          "sts",
          "get-caller-identity",
          "--profile",
          "refused",
          "--region",
          "eu-west-1",
          "--endpoint-url",
          "http://127.0.0.1:9",
        ],
        env,
      );
      expect(refused.code).not.toBe(0);
      // curl's line for the HTTP status (-S), then gatepass's answer.
      expect(refused.stderr).toContain(
        'Error when retrieving credentials from custom-process: curl: (22) The requested URL returned error: 404\ngatepass: {"',
      );
      expect(refused.stderr).toContain('"code":"target_unknown"');
      expect(refused.stderr).toContain(REFUSAL_SENTENCE);
    },
  );
});

interface AwsCli {
  path: string;
  version: string;
  major: number;
}

/** Every `aws` on PATH, one per version (pyenv's shim and Debian's /usr/bin/aws are different CLIs). */
function findAwsClis(): AwsCli[] {
  const found = new Map<string, AwsCli>();
  const which = spawnSync("sh", ["-c", "which -a aws"], { encoding: "utf8" });
  for (const candidate of new Set([...which.stdout.split("\n").filter(Boolean), "/usr/bin/aws"])) {
    const probe = spawnSync(candidate, ["--version"], { encoding: "utf8", env: { ...process.env, AWS_PAGER: "" } });
    const match = /aws-cli\/((\d+)\.\S+)/.exec(`${probe.stdout ?? ""}${probe.stderr ?? ""}`);
    if (probe.status === 0 && match && !found.has(match[1]!))
      found.set(match[1]!, { path: candidate, version: match[1]!, major: Number(match[2]) });
  }
  return [...found.values()];
}

function runCli(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function signRs256(privateKey: Parameters<typeof sign>[2], claims: Record<string, unknown>): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${part({ alg: "RS256", typ: "JWT", kid: "ci-1" })}.${part(claims)}`;
  return `${input}.${sign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
}

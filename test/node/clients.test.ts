// gatepass under `wrangler dev` (real workerd, local KV/D1) consumed by real clients:
// - an independent verifier (node:crypto, not jose) validating minted tokens through discovery;
// - google-auth-library consuming the `format=gcloud` external_account config;
// - the AWS SDK's credential_process provider consuming `format=credential_process`.
// The cloud stand-ins fetch gatepass's discovery and JWKS over HTTP, as the real clouds do.
import { fromProcess } from "@aws-sdk/credential-provider-process";
import { createPublicKey, generateKeyPairSync, sign, verify, type JsonWebKey } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ExternalAccountClient } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret, serializeSecret } from "../../src/mint/rotation";
import { ACTIVE_SNAPSHOT_KEY } from "../../src/policy/store";
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
  { ...base, name: "gcp-deploy", type: "gcp", workload_identity_provider: WIP, service_account: SA, scopes: ["https://www.googleapis.com/auth/cloud-platform"], audience: `//iam.googleapis.com/${WIP}` },
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
    name: "ci", url: `${up}/ci`, kind: "gitlab", aliases: [], audiences: ["gatepass"], algorithms: ["RS256"],
    keys: { source: "discovery" }, max_token_age_seconds: 3600, accept_legacy_ci_job_jwt: false,
  };
  const now = Math.floor(Date.now() / 1000);
  ciToken = signRs256(ci.privateKey, {
    iss: issuer.url, aud: "gatepass", sub: "project_path:platform/infra:ref_type:branch:ref:main", iat: now, nbf: now - 5, exp: now + 900,
    jti: crypto.randomUUID(), namespace_id: "10", namespace_path: "platform", project_id: "42", project_path: "platform/infra", user_id: "7",
    user_login: "alice", user_email: "alice@example.com", pipeline_id: "900", pipeline_source: "push", job_id: "1234", ref: "main",
    ref_type: "branch", ref_protected: "true",
  });

  const snapshot = await buildTestSnapshot({
    issuers: [issuer],
    targets,
    rules: [{ name: "infra-main", issuer: "ci", match: { project_path: "platform/infra", ref_type: "branch", ref: "main", ref_protected: "true" }, allow: targets.map((t) => t.name) }],
  });
  const secret = await generateSecret(["ES256", "RS256"], now - 600);
  signingKids = secret.keys.map((k) => k.kid).sort();
  gatepass = await startWranglerDev({
    vars: (url) => ({
      GATEPASS_ISSUER: url, GATEPASS_ENV: "development",
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
      gcp: { provider: WIP, condition: { project_path: "platform/infra" }, serviceAccounts: { [SA]: ["target:gcp-deploy"] } },
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
  it.each([["oidc-es", "ES256"], ["oidc-rs", "RS256"]])("validates a %s token (%s)", async (target, alg) => {
    const res = await credentials(target, { lifetime: "300" });
    expect(res.status).toBe(200);
    const { id_token } = (await res.json()) as { id_token: string };

    const discovery = (await (await fetch(`${gatepass.url}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string; id_token_signing_alg_values_supported: string[] };
    expect(discovery.issuer).toBe(gatepass.url);
    expect(discovery.id_token_signing_alg_values_supported).toContain(alg);
    const jwks = (await (await fetch(discovery.jwks_uri)).json()) as { keys: (JsonWebKey & { kid: string; alg: string })[] };
    // The secret from the env file is what signs (not development's ephemeral keys).
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual(signingKids);

    const [h, p, s] = id_token.split(".") as [string, string, string];
    const header = JSON.parse(Buffer.from(h, "base64url").toString()) as { alg: string; kid: string; typ: string };
    expect(header).toMatchObject({ alg, typ: "JWT" });
    const jwk = jwks.keys.find((k) => k.kid === header.kid)!;
    expect(jwk.alg).toBe(alg);
    expect(jwk).not.toHaveProperty("d");
    const key = createPublicKey({ key: jwk, format: "jwk" });
    const ok = verify("sha256", Buffer.from(`${h}.${p}`), alg === "ES256" ? { key, dsaEncoding: "ieee-p1363" } : key, Buffer.from(s, "base64url"));
    expect(ok).toBe(true);

    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const now = Math.floor(Date.now() / 1000);
    expect(claims).toMatchObject({ iss: gatepass.url, sub: `target:${target}`, aud: "https://rp.example.com", rule: "infra-main", project_path: "platform/infra" });
    for (const t of ["iat", "nbf", "exp"]) expect(Number.isInteger(claims[t])).toBe(true);
    expect(claims.exp as number).toBeGreaterThan(now);
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);

    // A tampered payload must not verify.
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: "target:other" })).toString("base64url");
    expect(verify("sha256", Buffer.from(`${h}.${forged}`), alg === "ES256" ? { key, dsaEncoding: "ieee-p1363" } : key, Buffer.from(s, "base64url"))).toBe(false);
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
    expect(requests.filter((r) => r.service === "gcp-iam").at(-1)!.path).toContain(`${encodeURIComponent(SA)}:generateAccessToken`);
  });

  it("takes the config the GitLab component's gcloud format installs, run by dash from another directory", async () => {
    const project = await mkdtemp(path.join(dir, "project-"));
    const job = includeComponent({ url: gatepass.url, target: "gcp-deploy", format: "gcloud" })[".gatepass"]!;
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) => {
      const child = spawn("dash", ["-e", "-c", [...job.before_script!, 'printf "%s" "$GOOGLE_APPLICATION_CREDENTIALS"'].join("\n")], {
        cwd: tmpdir(), env: { PATH: process.env.PATH, ...job.variables, CI_PROJECT_DIR: project, GATEPASS_ID_TOKEN: ciToken },
      });
      let out = "";
      let err = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
      child.on("close", (exit) => resolve({ stdout: out, stderr: err, code: exit }));
    });
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
    client.scopes = ["https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/userinfo.email"];
    expect((await client.getAccessToken()).token).toMatch(/^ya29\.sa-/);
    const iam = (await captured()).filter((r) => r.service === "gcp-iam").at(-1)!;
    expect(iam.body.scope).toEqual(["https://www.googleapis.com/auth/cloud-platform"]);
  });
});

describe("AWS SDK credential_process", () => {
  it("loads credentials from format=credential_process", async () => {
    const tokenFile = path.join(dir, "aws-ci-token");
    await writeFile(tokenFile, ciToken);
    const configFile = path.join(dir, "aws-config");
    const command = `curl -sf -X POST -H "Authorization: Bearer $(cat ${tokenFile})" -d format=credential_process ${gatepass.url}/v1/credentials/aws-deploy`;
    await writeFile(configFile, `[profile gatepass]\ncredential_process = ${command}\n`);
    await writeFile(path.join(dir, "aws-credentials"), "");
    const saved = { config: process.env.AWS_CONFIG_FILE, credentials: process.env.AWS_SHARED_CREDENTIALS_FILE };
    process.env.AWS_CONFIG_FILE = configFile;
    process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, "aws-credentials");
    try {
      const creds = await fromProcess({ profile: "gatepass" })();
      expect(creds.accessKeyId).toMatch(/^ASIA/);
      expect(creds.secretAccessKey).toBeTruthy();
      expect(creds.sessionToken).toMatch(/^FwoGZXIvYXdzE/);
      expect(creds.expiration!.getTime()).toBeGreaterThan(Date.now());
    } finally {
      process.env.AWS_CONFIG_FILE = saved.config;
      process.env.AWS_SHARED_CREDENTIALS_FILE = saved.credentials;
      if (saved.config === undefined) delete process.env.AWS_CONFIG_FILE;
      if (saved.credentials === undefined) delete process.env.AWS_SHARED_CREDENTIALS_FILE;
    }
    const aws = (await captured()).filter((r) => r.service === "aws-sts").at(-1)!;
    expect(aws.body.RoleSessionName).toBe("gitlab-1234");
    expect(aws.claims).toMatchObject({ iss: gatepass.url, sub: "target:aws-deploy", aud: "sts.amazonaws.com" });
  });
});

function signRs256(privateKey: Parameters<typeof sign>[2], claims: Record<string, unknown>): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${part({ alg: "RS256", typ: "JWT", kid: "ci-1" })}.${part(claims)}`;
  return `${input}.${sign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
}

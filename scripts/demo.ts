// `npm run demo`: gatepass end to end on one machine, no accounts. Everything outside gatepass is a
// loopback STAND-IN (test/support/standins): GitLab- and GitHub-shaped issuers (discovery + JWKS) and Google
// STS / IAM Credentials / AWS STS that, like the real clouds, verify gatepass's tokens via its discovery.
// gatepass itself runs for real under `wrangler dev` (workerd, local KV/D1 in a temporary directory).
import { generateSecret, serializeSecret } from "../src/signing-keys/signing-key-rotation";
import { buildSnapshot } from "../src/policy/snapshot-format";
import { ACTIVE_SNAPSHOT_KEY } from "../src/policy/active-policy";
import type { IssuerConfig, RuleSpec, Target } from "../src/types";
import { startStandins, type Standins } from "../test/support/standins";
import { issuerHandler } from "../test/support/standins/issuer";
import { upstreamsHandler } from "../test/support/standins/upstreams";
import { createTestKey, githubClaims, gitlabClaims, jwksOf, signToken } from "../test/support/tokens";
import { startWranglerDev, type WranglerDev } from "../test/support/wrangler-dev";
import { upstreamUrlVars } from "../test/support/standins/urls";

const WIP = "projects/123456/locations/global/workloadIdentityPools/ci-pool/providers/gatepass";
const SA = "deployer@demo-project.iam.gserviceaccount.com";
const ROLE = "arn:aws:iam::111122223333:role/deploy";
const AUDIENCE = "gatepass-demo";
const STANDIN = "STAND-IN — not real";

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
];

// What is running, so that shutdown() can stop it from a signal handler or the watchdog too: process.exit
// skips main's `finally`, and `wrangler dev` runs detached in its own process group (so does not get
// the terminal's Ctrl-C), holding workerd, a state directory and a secrets file under the temp dir.
let standins: Standins | undefined;
let gatepassStarting: Promise<WranglerDev> | undefined;
let stopped: Promise<void> | undefined;
let shuttingDown = false;

/** Stops the servers (once, however many callers), waiting for a `wrangler dev` still starting up. */
function stopServers(): Promise<void> {
  stopped ??= (async () => {
    const gatepass = await gatepassStarting?.catch(() => undefined); // a failed start cleaned up itself
    await Promise.allSettled([gatepass?.stop(), standins?.close()]);
  })();
  return stopped;
}

async function main(): Promise<void> {
  try {
    step("Starting loopback stand-ins (STAND-IN — not real GitLab, Google or AWS)");
    standins = await startStandins([issuerHandler, upstreamsHandler]);
    if (shuttingDown) return;
    const issuerUrl = `${standins.url}/issuer/gitlab-demo`;
    const up = `${standins.url}/up/demo`;
    const ciKey = await createTestKey("RS256");
    await control(`${issuerUrl}/_control`, { jwks: jwksOf(ciKey) });
    note(`GitLab issuer   (${STANDIN} GitLab): ${issuerUrl}`);
    // On loopback (a kind github issuer's URL may be one for local stand-ins); keys where GitHub serves them.
    const githubUrl = `${standins.url}/issuer/github-demo`;
    await control(`${githubUrl}/_control`, {
      jwks: jwksOf(ciKey),
      discovery: { jwks_uri: `${githubUrl}/.well-known/jwks` },
    });
    note(`GitHub issuer   (${STANDIN} GitHub Actions): ${githubUrl}`);
    note(`GCP STS + IAM   (${STANDIN} Google): ${up}/gcp/...`);
    note(`AWS STS         (${STANDIN} AWS):    ${up}/aws/...`);

    step("Policy: project platform/infra, protected branches only, may use gcp-deploy and aws-deploy");
    const issuer: IssuerConfig = {
      name: "gitlab",
      url: issuerUrl,
      kind: "gitlab",
      aliases: [],
      audiences: [AUDIENCE],
      algorithms: ["RS256"],
      keys: { source: "discovery" },
      max_token_age_seconds: 3600,
      accept_legacy_ci_job_jwt: false,
    };
    const github: IssuerConfig = { ...issuer, name: "github", kind: "github", url: githubUrl };
    const rules: RuleSpec[] = [
      {
        name: "infra-protected",
        issuer: "gitlab",
        match: { project_path: "platform/infra", ref_type: "branch", ref_protected: "true" },
        allow: targets.map((t) => t.name),
      },
      {
        name: "infra-github-main",
        issuer: "github",
        match: {
          repository_id: "701",
          ref: "refs/heads/main",
          ref_protected: "true",
          event_name: ["push", "workflow_dispatch"],
        },
        allow: ["aws-deploy"],
      },
    ];
    const { text: snapshot } = await buildSnapshot(
      { issuers: [issuer, github], targets, rules },
      { sourceDigest: "0".repeat(64), createdAt: new Date().toISOString() },
    );
    for (const rule of rules) note(JSON.stringify(rule));

    step("Starting gatepass (wrangler dev, local KV/D1 in a temporary directory; policy snapshot seeded into KV)");
    const now = Math.floor(Date.now() / 1000);
    const secret = await generateSecret(["ES256", "RS256"], now - 600);
    if (shuttingDown) return;
    gatepassStarting = startWranglerDev({
      vars: (url) => ({
        GATEPASS_ISSUER: url,
        GATEPASS_ENV: "development",
        ...upstreamUrlVars(up),
      }),
      secrets: { GATEPASS_SIGNING_KEYS: serializeSecret(secret) },
      kv: [{ binding: "POLICIES", key: ACTIVE_SNAPSHOT_KEY, value: snapshot }],
    });
    const gatepass = await gatepassStarting;
    if (shuttingDown) return;
    note(`gatepass: ${gatepass.url}`);
    // The cloud stand-ins trust gatepass as an OIDC issuer and fetch its keys through its discovery.
    await control(`${up}/_control`, {
      trust: { issuer: gatepass.url },
      gcp: {
        provider: WIP,
        condition: { project_path: "platform/infra" },
        serviceAccounts: { [SA]: ["target:gcp-deploy"] },
      },
      aws: { roles: { [ROLE]: { sub: "target:aws-deploy", aud: "sts.amazonaws.com" } } },
    });

    step("Minting a GitLab-shaped CI ID token (STAND-IN issuer key) for platform/infra on protected `main`");
    const mainToken = await signToken(ciKey, gitlabClaims({ issuer: issuerUrl, audience: AUDIENCE }));
    note(`CI_JOB_ID_TOKEN=${secretPreview(mainToken)}`);

    const gp = gatepass.url;
    await show(
      "GET /v1/whoami — what gatepass sees and what this job may use",
      await call(gp, "GET", "/v1/whoami", mainToken),
      200,
    );
    await show(
      `POST /v1/credentials/gcp-deploy format=env — GCP access token (${STANDIN} Google)`,
      await call(gp, "POST", "/v1/credentials/gcp-deploy", mainToken, { format: "env" }),
      200,
    );
    await show(
      `POST /v1/credentials/aws-deploy format=credential_process — AWS keys (${STANDIN} AWS)`,
      await call(gp, "POST", "/v1/credentials/aws-deploy", mainToken, { format: "credential_process" }),
      200,
    );

    const featureToken = await signToken(ciKey, {
      ...gitlabClaims({ issuer: issuerUrl, audience: AUDIENCE }),
      ref: "feature/try-things",
      ref_path: "refs/heads/feature/try-things",
      ref_protected: "false",
      sub: "project_path:platform/infra:ref_type:branch:ref:feature/try-things",
    });
    await show(
      "POST /v1/credentials/aws-deploy from unprotected `feature/try-things` — refused",
      await call(gp, "POST", "/v1/credentials/aws-deploy", featureToken, { format: "credential_process" }),
      403,
      "policy_denied",
    );
    await show(
      "GET /v1/whoami?target=aws-deploy — why that branch was refused (only `explain` shown)",
      await call(gp, "GET", "/v1/whoami?target=aws-deploy", featureToken),
      200,
      undefined,
      "explain",
    );
    step(
      "Minting a GitHub Actions-shaped ID token (STAND-IN issuer key) for platform/infra (repository_id 701), a push to protected main",
    );
    const githubToken = await signToken(ciKey, githubClaims({ issuer: githubUrl, audience: AUDIENCE }));
    await show(
      `POST /v1/credentials/aws-deploy from GitHub Actions — AWS keys (${STANDIN} AWS)`,
      await call(gp, "POST", "/v1/credentials/aws-deploy", githubToken, { format: "credential_process" }),
      200,
    );
    const forkToken = await signToken(ciKey, {
      ...githubClaims({ issuer: githubUrl, audience: AUDIENCE }),
      event_name: "pull_request_target",
      head_ref: "fork-feature",
      base_ref: "main",
    });
    await show(
      "POST /v1/credentials/aws-deploy from a pull_request_target run on main — refused",
      await call(gp, "POST", "/v1/credentials/aws-deploy", forkToken, { format: "credential_process" }),
      403,
      "policy_denied",
    );
    await show(
      "GET /.well-known/openid-configuration — gatepass as an OIDC issuer (what the clouds trust)",
      await call(gp, "GET", "/.well-known/openid-configuration"),
      200,
    );

    step("Demo complete: every response above came from real gatepass; GitLab, GitHub, Google and AWS were STAND-INS.");
  } finally {
    await stopServers();
  }
}

async function control(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: "PUT", body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`stand-in control ${url} answered ${res.status}`);
}

async function call(
  base: string,
  method: "GET" | "POST",
  path: string,
  token?: string,
  form?: Record<string, string>,
): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(form ? { "Content-Type": "application/x-www-form-urlencoded" } : {}),
    },
    body: form ? new URLSearchParams(form).toString() : undefined,
    signal: AbortSignal.timeout(15_000),
  });
}

/** Prints one exchange (or one member of its JSON body); throws, failing the demo, on an unexpected status or code. */
async function show(title: string, res: Response, status: number, code?: string, member?: string): Promise<void> {
  step(title);
  const text = await res.text();
  note(`HTTP ${res.status} ${res.headers.get("content-type") ?? ""}`);
  const shown =
    member === undefined ? text : JSON.stringify({ [member]: (JSON.parse(text) as Record<string, unknown>)[member] });
  for (const line of redact(shown).trimEnd().split("\n")) note(line);
  if (res.status !== status) throw new Error(`${title}: expected HTTP ${status}, got ${res.status}`);
  if (code !== undefined && !text.includes(`"${code}"`)) throw new Error(`${title}: expected error code ${code}`);
}

/** Pretty-prints JSON and shortens anything secret-looking; other formats are redacted line by line. */
function redact(text: string): string {
  try {
    return JSON.stringify(
      JSON.parse(text) as unknown,
      (key, value: unknown) => (typeof value === "string" && isSecretKey(key) ? secretPreview(value) : value),
      2,
    );
  } catch {
    return text.replace(
      /^((?:export\s+)?\w*(?:TOKEN|SECRET|KEY|CREDENTIAL)\w*=)(['"]?)(.*?)\2$/gim,
      (_m, name: string, q: string, v: string) => `${name}${q}${secretPreview(v)}${q}`,
    );
  }
}

function isSecretKey(key: string): boolean {
  return (
    /token|secret|key|credential|password/i.test(key) &&
    !/^(token_sha256|key_id|kid|token_type|id_token_signing_alg_values_supported)$/i.test(key) &&
    !/_supported$|_uri$|_endpoint$/.test(key)
  );
}

function secretPreview(value: string): string {
  return value.length <= 12 ? "…" : `${value.slice(0, 8)}…(${value.length} chars, truncated)`;
}

function step(text: string): void {
  console.log(`\n▶ ${text}`);
}

function note(text: string): void {
  console.log(`  ${text}`);
}

/** Hard exit if stopping the servers hangs (wrangler-dev's stop() escalates to SIGKILL after 5 s and waits 5 s more). */
const STOP_GRACE_MS = 12_000;

/**
 * Stops the servers, then exits. Later calls are ignored: one Ctrl-C under `npm run demo` can arrive
 * twice (from the terminal and forwarded by npm through tsx), and the grace timer bounds the wait.
 */
function shutdown(code: number, message: string): void {
  if (shuttingDown) return;
  shuttingDown = true;
  console.error(`\n✖ demo: ${message}; stopping the servers…`);
  setTimeout(() => {
    console.error(`✖ demo: the servers did not stop within ${STOP_GRACE_MS / 1000} s; exiting anyway`);
    process.exit(code);
  }, STOP_GRACE_MS);
  void stopServers().finally(() => process.exit(code));
}

const watchdog = setTimeout(() => shutdown(1, "did not finish within 90 s"), 90_000);
watchdog.unref();
process.on("SIGINT", () => shutdown(130, "interrupted (SIGINT)"));
process.on("SIGTERM", () => shutdown(143, "terminated (SIGTERM)"));

main().then(
  () => {
    if (!shuttingDown) process.exit(0);
  },
  (err: unknown) => {
    // During a shutdown, requests to the servers being stopped fail; shutdown() reports and exits.
    if (shuttingDown) return;
    console.error(`\n✖ demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);

// `gatepass dev`: a working local gatepass in one command, on embedded defaults:
//   local D1 (migrations applied) and KV under .wrangler/, the example policies pushed, a local signing
//   key, admin token and GATEPASS_ENV=development in .dev.vars, and local stand-in "GitLab" and "GitHub"
//   issuers (`local-gitlab` in policies/issuers.yaml, `local-github` in policies/github.yaml; one key) whose
//   keys are pushed, not fetched. Then `wrangler dev` on 127.0.0.1:8787.
// `gatepass dev token [...]`: a GitLab-shaped (or, with --kind github, GitHub-shaped) CI token signed by
//   that local issuer, for curl.
// The upstream overrides (docs/upstreams.md) pass from the environment to the Worker:
//   AWS_STS_URL='http://127.0.0.1:5000/' npm run dev

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { SignJWT, exportJWK, generateKeyPair, importJWK, calculateJwkThumbprint, type JWK } from "jose";
import { readConfig, UPSTREAM_VARS, type Env } from "../../src/config";
import { formatUsage, UsageError } from "../usage";
import { wrangler, wranglerEnv } from "../wrangler";

export const usage = formatUsage([
  {
    synopsis: ["dev [--port 8787]"],
    help: [
      "run gatepass locally on embedded defaults (local KV/D1, example policies);",
      "upstream overrides (GCP_STS_URL, AWS_STS_URL, ...) pass from the environment",
    ],
  },
  {
    synopsis: ["dev token [--kind gitlab|github] [--project P] [--ref R] [--ref-type branch|tag] [--protected true|false]", "[--pipeline-source S] [--event E] [--aud A] [--ttl SECONDS]"],
    help: ["print a CI token from the local stand-in issuer (--kind github: GitHub Actions' claims; --event sets event_name)"],
  },
]);

const DEV_DIR = ".wrangler/gatepass-dev";
const ISSUER_KEY_FILE = path.join(DEV_DIR, "local-gitlab.private.jwk.json");
const ISSUER_JWKS_FILE = path.join(DEV_DIR, "local-gitlab.jwks.json");
/** Must match the `local-gitlab` issuer in policies/issuers.yaml. */
const LOCAL_ISSUER = { name: "local-gitlab", url: "http://127.0.0.1:8788", audience: "http://127.0.0.1:8787" };
/** Must match the `local-github` issuer in policies/github.yaml (GitHub Enterprise Server's URL form); same key. */
const LOCAL_GITHUB_ISSUER = { name: "local-github", url: "http://127.0.0.1:8789/_services/token" };

export async function run(args: string[]): Promise<number> {
  if (args[0] === "token") return printToken(args.slice(1));
  const { values } = parseArgs({ args, options: { port: { type: "string", default: "8787" } } });
  // gatepass names itself by GATEPASS_ISSUER (discovery, minted iss, gcloud token_url), so on another
  // port it must say so rather than keep wrangler.toml's 8787.
  const url = `http://127.0.0.1:${values.port}`;
  const upstreams = upstreamOverrides(url);
  if (typeof upstreams === "string") {
    process.stderr.write(`gatepass dev: ${upstreams}\n`);
    return 1;
  }
  forwardStopSignals();
  try {
    await prepareLocalState();
  } catch (err) {
    if (stopping) return signalExitCode(stopping);
    throw err;
  }
  for (const [name, value] of upstreams) step(`${name}=${value} (from the environment)`);
  process.stderr.write(`\ngatepass: starting wrangler dev on ${url}\n` +
    `  try:  curl -s -H "Authorization: Bearer $(npx gatepass dev token)" ${url}/v1/whoami\n\n`);
  const vars = [["GATEPASS_ISSUER", url], ...upstreams].flatMap(([name, value]) => ["--var", `${name}:${value}`]);
  return runCli(["wrangler", "dev", "--ip", "127.0.0.1", "--port", values.port!, ...vars], { inherit: true });
}

/**
 * The upstream overrides set in this process's environment, checked by the Worker's own rule (https,
 * or http on loopback: a local run is in development mode); a string says why one is refused.
 */
function upstreamOverrides(issuer: string): Array<[string, string]> | string {
  const overrides = UPSTREAM_VARS.flatMap((name) => (process.env[name] ? [[name, process.env[name]] as [string, string]] : []));
  try {
    readConfig({ GATEPASS_ISSUER: issuer, GATEPASS_ENV: "development", ...Object.fromEntries(overrides) } as unknown as Env);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? cause.message : String(err);
  }
  return overrides;
}

/** Everything `npm run dev` needs, idempotent. */
async function prepareLocalState(): Promise<void> {
  await mkdir(DEV_DIR, { recursive: true });
  await ensureDevVars();
  const jwks = await ensureIssuerKey();
  await writeFile(ISSUER_JWKS_FILE, JSON.stringify(jwks, null, 2));
  step("applying D1 migrations (local)");
  await wrangler(["d1", "migrations", "apply", "DB", "--local"]);
  step("pushing policies/ (local)");
  await mustSucceed(["policies", "push", "--local", "--by", "gatepass-dev"]);
  // One key serves both stand-ins. One push at a time: two wranglers writing the same local D1 and KV could collide.
  for (const issuer of [LOCAL_ISSUER.name, LOCAL_GITHUB_ISSUER.name]) {
    step(`pushing the ${issuer} keys (local)`);
    await mustSucceed(["jwks", "push", "--issuer", issuer, "--file", ISSUER_JWKS_FILE, "--local"]);
  }
}

async function ensureDevVars(): Promise<void> {
  const file = ".dev.vars";
  const read = async () => (existsSync(file) ? await readFile(file, "utf8") : "");
  const has = async (name: string) => new RegExp(`^${name}=`, "m").test(await read());
  const append = async (line: string) => writeFile(file, `${(await read()).replace(/\n?$/, "\n")}${line}\n`, { mode: 0o600 });
  if (!(await has("GATEPASS_SIGNING_KEYS"))) {
    step("generating a local signing key into .dev.vars");
    await mustSucceed(["keys", "generate", "--dev-vars", file]);
  }
  if (!(await has("GATEPASS_ADMIN_TOKEN"))) {
    step("generating a local admin token into .dev.vars");
    await append(`GATEPASS_ADMIN_TOKEN=${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}`);
  }
  // Local runs only: wrangler.toml leaves it out, so a deployed Worker never runs in development mode.
  if (!(await has("GATEPASS_ENV"))) await append("GATEPASS_ENV=development");
}

async function ensureIssuerKey(): Promise<{ keys: JWK[] }> {
  let privateJwk: JWK;
  if (existsSync(ISSUER_KEY_FILE)) {
    privateJwk = JSON.parse(await readFile(ISSUER_KEY_FILE, "utf8")) as JWK;
  } else {
    step(`generating the ${LOCAL_ISSUER.name} stand-in issuer key`);
    const { privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
    privateJwk = await exportJWK(privateKey);
    privateJwk.kid = await calculateJwkThumbprint(privateJwk);
    privateJwk.alg = "RS256";
    await writeFile(ISSUER_KEY_FILE, JSON.stringify(privateJwk), { mode: 0o600 });
  }
  const { kty, n, e, kid, alg } = privateJwk;
  return { keys: [{ kty, n, e, kid, alg, use: "sig" }] };
}

async function printToken(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      project: { type: "string", default: "platform/infra" },
      ref: { type: "string", default: "main" },
      "ref-type": { type: "string", default: "branch" },
      protected: { type: "string", default: "true" },
      "pipeline-source": { type: "string", default: "push" },
      kind: { type: "string", default: "gitlab" },
      event: { type: "string", default: "push" },
      aud: { type: "string", default: LOCAL_ISSUER.audience },
      ttl: { type: "string", default: "3600" },
    },
  });
  // GitLab sends exactly these spellings, and rules compare them as strings: `--protected no` would
  // mint a token no rule written for GitLab's "false" matches, which tests nothing.
  for (const [option, allowed] of [["protected", ["true", "false"]], ["ref-type", ["branch", "tag"]], ["kind", ["gitlab", "github"]]] as const) {
    const value = values[option]!;
    if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${option} takes ${allowed.join(" or ")}, not '${value}'`);
  }
  if (!/^[1-9]\d{0,6}$/.test(values.ttl!)) throw new UsageError(`--ttl takes a number of seconds (1 to 9999999), not '${values.ttl}'`);
  if (!existsSync(ISSUER_KEY_FILE)) {
    process.stderr.write("gatepass: no local issuer key yet; run `npm run dev` first\n");
    return 1;
  }
  const jwk = JSON.parse(await readFile(ISSUER_KEY_FILE, "utf8")) as JWK;
  const key = await importJWK(jwk, "RS256");
  const project = values.project!;
  const namespace = project.includes("/") ? project.slice(0, project.lastIndexOf("/")) : project;
  const id = (text: string) => String(1000 + [...text].reduce((sum, ch) => (sum * 31 + ch.charCodeAt(0)) % 900_000, 7));
  const refType = values["ref-type"]!;
  const now = Math.floor(Date.now() / 1000);
  if (values.kind === "github") {
    process.stdout.write(`${await githubToken(key, jwk.kid!, { project, namespace, id, refType, now, ref: values.ref!, protectedRef: values.protected!, event: values.event!, aud: values.aud!, ttl: Number(values.ttl) })}\n`);
    return 0;
  }
  const token = await new SignJWT({
    namespace_id: id(namespace), namespace_path: namespace, project_id: id(project), project_path: project,
    user_id: "1", user_login: "dev", user_email: "dev@example.com", user_access_level: "maintainer",
    pipeline_id: String(now), pipeline_source: values["pipeline-source"], job_id: String(now + 1),
    ref: values.ref, ref_type: refType, ref_path: `refs/${refType === "tag" ? "tags" : "heads"}/${values.ref}`,
    ref_protected: values.protected, runner_id: 1, runner_environment: "self-hosted", sha: "0".repeat(40),
    project_visibility: "private", ci_config_ref_uri: `127.0.0.1:8788/${project}//.gitlab-ci.yml@refs/heads/${values.ref}`,
    ci_config_sha: "0".repeat(40), jti: crypto.randomUUID(),
  })
    .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: jwk.kid! })
    .setIssuer(LOCAL_ISSUER.url)
    .setSubject(`project_path:${project}:ref_type:${refType}:ref:${values.ref}`)
    .setAudience(values.aud!)
    .setIssuedAt(now)
    .setNotBefore(now - 5)
    .setExpirationTime(now + Number(values.ttl))
    .sign(key);
  process.stdout.write(`${token}\n`);
  return 0;
}

interface GithubTokenInput {
  project: string;
  namespace: string;
  id: (text: string) => string;
  refType: string;
  now: number;
  ref: string;
  protectedRef: string;
  event: string;
  aud: string;
  ttl: number;
}

/** A token with the claims GitHub's OIDC reference documents (ids as decimal strings), from the local stand-in GitHub issuer. */
async function githubToken(key: Awaited<ReturnType<typeof importJWK>>, kid: string, input: GithubTokenInput): Promise<string> {
  const ref = `refs/${input.refType === "tag" ? "tags" : "heads"}/${input.ref}`;
  const workflowRef = `${input.project}/.github/workflows/deploy.yml@${ref}`;
  const pullRequest = input.event.startsWith("pull_request");
  return new SignJWT({
    jti: crypto.randomUUID(), ref, ref_type: input.refType, ref_protected: input.protectedRef, sha: "0".repeat(40),
    repository: input.project, repository_id: input.id(input.project), repository_owner: input.namespace, repository_owner_id: input.id(input.namespace),
    repository_visibility: "private", actor: "dev", actor_id: "1", run_id: String(input.now), run_number: "1", run_attempt: "1",
    runner_environment: "self-hosted", workflow: "deploy", workflow_ref: workflowRef, workflow_sha: "0".repeat(40),
    job_workflow_ref: workflowRef, job_workflow_sha: "0".repeat(40), event_name: input.event,
    head_ref: pullRequest ? "feature" : "", base_ref: pullRequest ? input.ref : "",
  })
    .setProtectedHeader({ alg: "RS256", typ: "JWT", kid })
    .setIssuer(LOCAL_GITHUB_ISSUER.url)
    .setSubject(pullRequest ? `repo:${input.project}:pull_request` : `repo:${input.project}:ref:${ref}`)
    .setAudience(input.aud)
    .setIssuedAt(input.now)
    .setNotBefore(input.now - 5)
    .setExpirationTime(input.now + input.ttl)
    .sign(key);
}

function step(message: string): void {
  process.stderr.write(`gatepass dev: ${message}\n`);
}

async function mustSucceed(args: string[]): Promise<void> {
  const code = await runCli(args, { inherit: false });
  if (code !== 0) throw new Error(`gatepass ${args.join(" ")} failed (exit ${code})`);
}

// A SIGINT or SIGTERM sent to `gatepass dev` alone (a process manager, an IDE's stop button, `kill`)
// would end it and orphan wrangler, whose workerd keeps the port. So the signal goes on to the
// running child, and gatepass exits with the child's status once the child is gone.
const children = new Set<ChildProcess>();
let stopping: NodeJS.Signals | undefined;

function forwardStopSignals(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      stopping ??= signal;
      for (const child of children) child.kill(signal);
      if (children.size === 0) process.exit(signalExitCode(signal));
    });
  }
}

/** The shell's convention for a process ended by a signal. */
function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

/** Runs another gatepass command (or wrangler, when args[0] is "wrangler") as a child process. */
function runCli(args: string[], options: { inherit: boolean }): Promise<number> {
  if (stopping) return Promise.resolve(signalExitCode(stopping)); // asked to stop: start nothing more
  const [command, argv] =
    args[0] === "wrangler"
      ? [path.resolve("node_modules/wrangler/bin/wrangler.js"), args.slice(1)]
      : [path.resolve("cli/gatepass.mjs"), args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [command, ...argv], { env: wranglerEnv(), stdio: options.inherit ? "inherit" : ["ignore", "inherit", "inherit"] });
    children.add(child);
    child.on("error", (err) => (children.delete(child), reject(err)));
    child.on("exit", (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal ? signalExitCode(signal) : 1));
    });
  });
}

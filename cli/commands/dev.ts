// `gatepass dev`: a working local gatepass in one command, on embedded defaults:
//   local D1 (migrations applied) and KV under .wrangler/, the example policies pushed, a local signing
//   key, admin token and GATEPASS_ENV=development in .dev.vars, and local stand-in "GitLab" and "GitHub"
//   issuers (`local-gitlab` in policies/issuers.yaml, `local-github` in policies/github.yaml; one key) whose
//   keys are pushed, not fetched. Then `wrangler dev` on 127.0.0.1:8787.
//   The port is checked before anything is written; migrations already applied and a policy version
//   already active are skipped; the pushes run in this process (local storage through Miniflare,
//   cli/local-storage.ts). While it runs, a save under policies/ is validated, tested and pushed
//   locally, and the Worker (GATEPASS_POLICY_RECHECK=every-request, development only) serves it on
//   the next request; a failing edit prints its findings and the last good version keeps serving.
// `gatepass dev token [...]`: a GitLab-shaped (or, with --kind github, GitHub-shaped) CI token signed by
//   that local issuer, for curl.
// The upstream overrides (docs/upstreams.md) pass from the environment to the Worker:
//   AWS_STS_URL='http://127.0.0.1:5000/' npm run dev

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, watch } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { constants } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { SignJWT, exportJWK, generateKeyPair, importJWK, calculateJwkThumbprint, type JWK } from "jose";
import { readConfig, UPSTREAM_VARS, type Env } from "../../src/config";
import { checkPolicyDir } from "../policy/policy-files";
import { PolicyStorage } from "../policy/policy-storage";
import { withStorage } from "../remote-d1";
import { USAGE } from "../help";
import { UsageError } from "../usage-error";
import { closeLocalStorage, wrangler, wranglerEnv } from "../wrangler";

export const usage = USAGE.dev;

const DEV_DIR = ".wrangler/gatepass-dev";
const POLICY_DIR = "policies";
/** How long a burst of file events (an editor's save writes, renames, touches) settles before one push. */
const SAVE_SETTLE_MS = 100;
const ISSUER_KEY_FILE = path.join(DEV_DIR, "local-gitlab.private.jwk.json");
const ISSUER_JWKS_FILE = path.join(DEV_DIR, "local-gitlab.jwks.json");
/** Must match the `local-gitlab` issuer in policies/issuers.yaml. */
const LOCAL_ISSUER = { name: "local-gitlab", url: "http://127.0.0.1:8788", audience: "http://127.0.0.1:8787" };
/** Must match the `local-github` issuer in policies/github.yaml (GitHub Enterprise Server's URL form); same key. */
const LOCAL_GITHUB_ISSUER = { name: "local-github", url: "http://127.0.0.1:8789/_services/token" };

export async function run(args: string[]): Promise<number> {
  if (args[0] === "token") return printToken(args.slice(1));
  const { values } = parseArgs({ args, options: { port: { type: "string", default: "8787" } } });
  if (!/^[1-9]\d{0,4}$/.test(values.port) || Number(values.port) > 65535) throw new UsageError(`--port takes a port number from 1 to 65535, not '${values.port}'`);
  // gatepass names itself by GATEPASS_ISSUER (discovery, minted iss, gcloud token_url), so on another
  // port it must say so rather than keep wrangler.toml's 8787.
  const url = `http://127.0.0.1:${values.port}`;
  const upstreams = upstreamOverrides(url);
  if (typeof upstreams === "string") {
    process.stderr.write(`gatepass dev: ${upstreams}\n`);
    return 1;
  }
  if (!(await portIsFree(Number(values.port)))) {
    process.stderr.write(`gatepass dev: 127.0.0.1:${values.port} is in use (another gatepass dev?); stop it or pass --port\n`);
    return 2;
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
  // Development only (the Worker refuses it elsewhere): every request re-reads the active policy, so a saved edit is live at once.
  const vars = [["GATEPASS_ISSUER", url], ["GATEPASS_POLICY_RECHECK", "every-request"], ...upstreams].flatMap(([name, value]) => ["--var", `${name}:${value}`]);
  const stopWatching = watchPolicies();
  try {
    return await runWranglerDev(["dev", "--ip", "127.0.0.1", "--port", values.port!, ...vars]);
  } finally {
    stopWatching();
  }
}

/** Whether 127.0.0.1:port can be bound now (wrangler binds it a few seconds later; a race loses with wrangler's own error). */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => server.close(() => resolve(true)));
  });
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
  if (await migrationsPending()) {
    step("applying D1 migrations (local)");
    await wrangler(["d1", "migrations", "apply", "DB", "--local"]);
  } else step("D1 migrations: all applied (local)");
  const active = await activePolicyVersion();
  if (active) step(`policies/: version ${active.slice(0, 12)} is already active (local)`);
  else {
    step("pushing policies/ (local)");
    await mustSucceed("policies", ["push", "--local", "--by", "gatepass-dev"]);
  }
  // One key serves both stand-ins, pushed one after the other into the same local state.
  for (const issuer of [LOCAL_ISSUER.name, LOCAL_GITHUB_ISSUER.name]) {
    step(`pushing the ${issuer} keys (local)`);
    await mustSucceed("jwks", ["push", "--issuer", issuer, "--file", ISSUER_JWKS_FILE, "--local"]);
  }
  // wrangler dev opens the state next: this process lets go of it (and of Miniflare's signal handlers).
  await closeLocalStorage();
  keepOnlyForwarders();
}

/**
 * Whether a migration file has no row in d1_migrations, wrangler's own record of applied migrations
 * (a missing table: nothing applied yet). wrangler applies them; this only spares starting it.
 */
async function migrationsPending(): Promise<boolean> {
  const files = (await readdir("migrations")).filter((name) => name.endsWith(".sql"));
  let applied: Set<string>;
  try {
    const output = await wrangler(["d1", "execute", "DB", "--local", "--json", "--command", "SELECT name FROM d1_migrations"]);
    applied = new Set((JSON.parse(output) as [{ results: { name: string }[] }])[0].results.map((row) => row.name));
  } catch {
    return true;
  }
  return files.some((name) => !applied.has(name));
}

/** The version policies/ compiles to, when it is the active one locally; undefined otherwise (push then reports why). */
async function activePolicyVersion(): Promise<string | undefined> {
  const result = await checkPolicyDir(POLICY_DIR);
  if (!result.ok) return undefined;
  const { version } = result.snapshot;
  const { active } = await withStorage({ remote: false }, (storage) => new PolicyStorage(storage).findVersions(version));
  return active === version ? version : undefined;
}

/**
 * Pushes policies/ locally after each save (the push validates and tests first, and changes nothing
 * when either fails, so the last good version keeps serving). One push at a time; saves during a
 * push make one more push after it. Returns a function that stops watching.
 */
function watchPolicies(): () => void {
  let timer: NodeJS.Timeout | undefined;
  let pushing = false;
  let again = false;
  const push = async (): Promise<void> => {
    if (pushing) {
      again = true;
      return;
    }
    pushing = true;
    try {
      step(`${POLICY_DIR}/ changed: validating, testing, pushing (local)`);
      const code = await runCommand("policies", ["push", "--local", "--by", "gatepass-dev"]).catch((err: Error) => (process.stderr.write(`gatepass: ${err.message}\n`), 1));
      if (code !== 0) step("the edit was not pushed; the last good version keeps serving");
    } finally {
      // Between saves this process holds no state open (wrangler dev's Worker reads it), nor Miniflare's signal handlers.
      await closeLocalStorage();
      keepOnlyForwarders();
      pushing = false;
    }
    if (again) {
      again = false;
      await push();
    }
  };
  const watcher = watch(POLICY_DIR, { recursive: true }, () => {
    clearTimeout(timer);
    timer = setTimeout(() => void push(), SAVE_SETTLE_MS);
  });
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}

async function ensureDevVars(): Promise<void> {
  const file = ".dev.vars";
  const read = async () => (existsSync(file) ? await readFile(file, "utf8") : "");
  const has = async (name: string) => new RegExp(`^${name}=`, "m").test(await read());
  const append = async (line: string) => writeFile(file, `${(await read()).replace(/\n?$/, "\n")}${line}\n`, { mode: 0o600 });
  if (!(await has("GATEPASS_SIGNING_KEYS"))) {
    step("generating a local signing key into .dev.vars");
    await mustSucceed("keys", ["generate", "--dev-vars", file]);
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

/** Runs another gatepass command group in this process (no second CLI start), as `gatepass group ...args`. */
async function runCommand(group: "policies" | "jwks" | "keys", args: string[]): Promise<number> {
  if (stopping) return signalExitCode(stopping); // asked to stop: start nothing more
  const commands = { policies: () => import("./policies"), jwks: () => import("./jwks"), keys: () => import("./keys") };
  return (await commands[group]()).run(args);
}

async function mustSucceed(group: "policies" | "jwks" | "keys", args: string[]): Promise<void> {
  const code = await runCommand(group, args);
  if (code !== 0) throw new Error(`gatepass ${group} ${args.join(" ")} failed (exit ${code})`);
}

// A SIGINT or SIGTERM sent to `gatepass dev` alone (a process manager, an IDE's stop button, `kill`)
// would end it and orphan wrangler, whose workerd keeps the port. So the signal goes on to the
// running child, and gatepass exits with the child's status once the child is gone.
const children = new Set<ChildProcess>();
let stopping: NodeJS.Signals | undefined;

const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;
const forwarders = new Set<NodeJS.SignalsListener>();

function forwardStopSignals(): void {
  for (const signal of STOP_SIGNALS) {
    const forward = () => {
      stopping ??= signal;
      for (const child of children) child.kill(signal);
      if (children.size === 0) process.exit(signalExitCode(signal));
    };
    forwarders.add(forward);
    process.on(signal, forward);
  }
}

/**
 * Removes the stop handlers the local storage brought into this process: wrangler's bundle (loaded for
 * its config reader) installs SIGINT/SIGTERM handlers that exit at once, which would orphan
 * `wrangler dev` and its workerd (Miniflare's own go when it is closed). Called once nothing of the
 * local storage is open.
 */
function keepOnlyForwarders(): void {
  for (const signal of STOP_SIGNALS) for (const listener of process.listeners(signal)) if (!forwarders.has(listener)) process.off(signal, listener);
}

/** The shell's convention for a process ended by a signal. */
function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

/** Runs `wrangler ...args` (wrangler dev) as a child process on this terminal. */
function runWranglerDev(args: string[]): Promise<number> {
  if (stopping) return Promise.resolve(signalExitCode(stopping)); // asked to stop: start nothing more
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve("node_modules/wrangler/bin/wrangler.js"), ...args], { env: wranglerEnv(), stdio: "inherit" });
    children.add(child);
    child.on("error", (err) => (children.delete(child), reject(err)));
    child.on("exit", (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal ? signalExitCode(signal) : 1));
    });
  });
}

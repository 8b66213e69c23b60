// `gatepass deploy`: from a clone to a running gatepass in one command, safe to run again. In order:
//   1. configuration  GATEPASS_ISSUER (the wrangler config, for --env) is an https origin, no GATEPASS_ENV
//   2. policies       valid, and their tests pass (local: a failure here has changed nothing remote)
//   3. secrets        GATEPASS_SIGNING_KEYS and GATEPASS_ADMIN_TOKEN: only those the Worker lacks are
//                     generated, each saved to the operator's file first (mode 0600, never overwritten;
//                     a file left by an earlier run that stopped before step 4 is used if only the
//                     user could have written it: cli/secret-files.ts)
//   4. secrets set    `wrangler secret bulk`, the missing ones only (a live secret is never replaced)
//   5. D1 migrations  `wrangler d1 migrations apply DB --remote`
//   6. deploy         `wrangler deploy`: the first one creates the KV namespaces (wrangler's automatic
//                     provisioning); later ones find them on the deployed Worker
//   7. policies push  KV + D1 history, as `gatepass policies push --remote` does. After the deploy: with
//                     no ids in the config, the KV namespaces exist only once the first deploy made them
//   8. check          /healthz and discovery at GATEPASS_ISSUER, the URL relying parties use
// A failure says which steps are done and what to run next (each step finds what is already in place).
//
// wrangler 4.86 looks a D1 database up by name only for `wrangler deploy`; its `d1` commands with
// --remote need database_id in the config (fixed in wrangler 4.102). Without one, steps 5 and 7 find
// the database by database_name (cli/remote-d1.ts, as every --remote command does), create it if
// missing (deploy only), and run against a copy of the config that carries its id.

import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { readConfig, type Env } from "../../src/config";
import { DEPLOY_CHECK_INTERVAL_MS, DEPLOY_CHECK_REQUEST_TIMEOUT_MS, DEPLOY_CHECK_TIMEOUT_MS } from "../../src/limits";
import { parseSigningKeySecret } from "../../src/mint/keys";
import { generateSecret, serializeSecret } from "../../src/mint/rotation";
import { formatFinding } from "../../src/policy/source";
import { checkPolicyDir } from "../policy/files";
import { parseTestFiles, runCase } from "../policy/test-cases";
import { configCopyDir, findDatabase, readWorkerConfig, requireDbBinding, requireEnvSection, writeConfigWithDatabaseId, type WorkerConfig } from "../remote-d1";
import { checkSecretDir, readOwnSecretFile, SecretFileError } from "../secret-files";
import { shellWord } from "../shell";
import { USAGE } from "../help";
import { UsageError } from "../usage";
import { wrangler } from "../wrangler";
import { createPrivateFile } from "./keys";
import { run as policies } from "./policies";

export const usage = USAGE.deploy;

const SIGNING_KEYS = "GATEPASS_SIGNING_KEYS";
const ADMIN_TOKEN = "GATEPASS_ADMIN_TOKEN";
type SecretName = typeof SIGNING_KEYS | typeof ADMIN_TOKEN;

/** What the check step needs from outside; tests replace it. */
export interface DeployDeps {
  fetch: typeof fetch;
  sleep(ms: number): Promise<void>;
  now(): number;
}

const realDeps: DeployDeps = { fetch: (input, init) => fetch(input, init), sleep: (ms) => new Promise((r) => setTimeout(r, ms)), now: () => Date.now() };

export function run(args: string[]): Promise<number> {
  return deploy(args, realDeps);
}

interface Options {
  env?: string;
  config: string;
  dir: string;
  by?: string;
  dryRun: boolean;
  secretFiles: { dir?: string; [SIGNING_KEYS]?: string; [ADMIN_TOKEN]?: string };
}

interface Step {
  title: string;
  /** Does the step; returns what it did, in a few words. */
  run(): Promise<string>;
  /** The same step by hand, for the operator who wants it. */
  byHand(): string;
}

/** A step that cannot go on, with the reason the operator can act on. */
class StepFailure extends Error {}

export async function deploy(args: string[], deps: DeployDeps): Promise<number> {
  const options = parseOptions(args);
  const rerun = `npx gatepass deploy${args.map((arg) => ` ${shellWord(arg)}`).join("")}`;
  const scratch: string[] = [];
  try {
    return await runSteps(plan(options, deps, scratch), rerun, options.dryRun);
  } finally {
    for (const dir of scratch) await rm(dir, { recursive: true, force: true });
  }
}

async function runSteps(steps: Step[], rerun: string, dryRun: boolean): Promise<number> {
  const done: string[] = [];
  for (const [index, step] of steps.entries()) {
    const label = `${index + 1}/${steps.length} ${step.title}`;
    let detail: string;
    try {
      detail = await step.run();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      out(`  ✗ ${label}`);
      for (const [later, skipped] of steps.slice(index + 1).entries()) out(`  · ${index + later + 2}/${steps.length} ${skipped.title}: not run`);
      process.stderr.write(
        `\ngatepass deploy: step ${index + 1} (${step.title}) failed:\n${indent(reason)}\n` +
          (done.length > 0 ? `Done before it, and still in place: ${done.join("; ")}.\n` : "Nothing was changed.\n") +
          `Next: fix the cause, then run the same command again (each step finds what is already done):\n  ${rerun}\n` +
          `Or this step by hand: ${step.byHand()}\n`,
      );
      return 1;
    }
    out(`  ✓ ${label}: ${detail}`);
    done.push(`${step.title} (${detail})`);
  }
  out(dryRun ? "\ngatepass deploy --dry-run: the checks pass and the Worker bundles; nothing was changed." : "\ngatepass deploy: done.");
  return 0;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      env: { type: "string" },
      config: { type: "string", default: "wrangler.toml" },
      dir: { type: "string", default: "policies" },
      by: { type: "string" },
      "secrets-dir": { type: "string" },
      "signing-keys-file": { type: "string" },
      "admin-token-file": { type: "string" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  const explicit = values["signing-keys-file"] !== undefined || values["admin-token-file"] !== undefined;
  if (values["secrets-dir"] !== undefined && explicit) throw new UsageError("choose --secrets-dir or the --signing-keys-file/--admin-token-file pair, not both");
  for (const flag of ["secrets-dir", "signing-keys-file", "admin-token-file", "env", "config", "dir"] as const) {
    if (values[flag] === "") throw new UsageError(`--${flag} takes a value`);
  }
  return {
    ...(values.env ? { env: values.env } : {}),
    config: path.resolve(values.config),
    dir: values.dir,
    ...(values.by ? { by: values.by } : {}),
    dryRun: values["dry-run"],
    secretFiles: {
      ...(values["secrets-dir"] ? { dir: values["secrets-dir"] } : {}),
      ...(values["signing-keys-file"] ? { [SIGNING_KEYS]: values["signing-keys-file"] } : {}),
      ...(values["admin-token-file"] ? { [ADMIN_TOKEN]: values["admin-token-file"] } : {}),
    },
  };
}

/** The steps for these options; later steps use what earlier ones found (closure state). */
function plan(options: Options, deps: DeployDeps, scratch: string[]): Step[] {
  const env = options.env ? ["--env", options.env] : [];
  const configFlag = ["--config", options.config];
  const envText = env.length > 0 ? ` ${env.join(" ")}` : "";
  let worker: WorkerConfig;
  let issuer: string;
  let missing: Map<SecretName, string> = new Map();
  /** Where steps 5 and 7 reach remote D1: the operator's config, or a copy carrying the database id. */
  let remoteConfig: string[] = [...env, ...configFlag];
  let deployedUrls: string[] = [];

  const configuration: Step = {
    title: "configuration",
    async run() {
      worker = readWorker(options);
      issuer = checkIssuer(worker);
      return `worker ${worker.name}, GATEPASS_ISSUER ${issuer}`;
    },
    byHand: () => `set GATEPASS_ISSUER to your https:// origin under [vars]${options.env ? ` of [env.${options.env}]` : ""} in ${path.relative(".", options.config) || options.config}`,
  };
  const policyCheck: Step = {
    title: "policies",
    run: () => checkPolicies(options.dir),
    byHand: () => `npx gatepass policies test --dir ${shellWord(options.dir)}`,
  };
  if (options.dryRun) {
    const bundle: Step = {
      title: "bundle (wrangler deploy --dry-run)",
      run: () => dryRunBundle([...env, ...configFlag]),
      byHand: () => `npx wrangler deploy --dry-run --outdir dist${envText}`,
    };
    return [configuration, policyCheck, bundle];
  }
  return [
    configuration,
    policyCheck,
    {
      title: "secrets",
      async run() {
        const present = await liveSecrets([...env, ...configFlag]);
        missing = new Map();
        const notes: string[] = [];
        for (const name of [SIGNING_KEYS, ADMIN_TOKEN] as const) {
          if (present.has(name)) {
            notes.push(`${name} already set (kept)`);
            continue;
          }
          const { value, note } = await secretToSet(name, secretFile(options.secretFiles, name, worker.name));
          missing.set(name, value);
          notes.push(note);
        }
        return notes.join("; ");
      },
      byHand: () => "npx gatepass keys generate --out FILE for GATEPASS_SIGNING_KEYS; for GATEPASS_ADMIN_TOKEN 32+ random base64url characters, e.g. openssl rand -base64 32 | tr '+/' '-_' | tr -d '='",
    },
    {
      title: "secrets set",
      async run() {
        if (missing.size === 0) return "nothing to set";
        // On stdin, never on the command line (which other local users can read).
        await wrangler(["secret", "bulk", ...env, ...configFlag], { input: JSON.stringify(Object.fromEntries(missing)) });
        return `set ${[...missing.keys()].join(" and ")} with wrangler secret bulk`;
      },
      byHand: () => `npx wrangler secret put GATEPASS_SIGNING_KEYS${envText} < FILE (and GATEPASS_ADMIN_TOKEN the same way)`,
    },
    {
      title: "D1 migrations",
      async run() {
        const { flags, note } = await remoteD1(worker, options, configFlag, scratch);
        remoteConfig = flags;
        const output = await wrangler(["d1", "migrations", "apply", "DB", "--remote", ...remoteConfig]);
        const applied = [...new Set(output.match(/\b\d{4}_[\w-]+\.sql\b/g) ?? [])];
        return `${note}; ${applied.length > 0 ? `applied ${applied.join(", ")}` : "already up to date"}`;
      },
      byHand: () => `npx wrangler d1 migrations apply DB --remote${envText} (wrangler 4.86 needs database_id in the config for it; \`npx wrangler d1 list\` shows it)`,
    },
    {
      title: "deploy",
      async run() {
        const output = await wrangler(["deploy", ...env, ...configFlag]);
        deployedUrls = [...new Set(output.match(/https:\/\/[^\s)]+/g) ?? [])];
        const version = /Current Version ID: ([\w-]+)/.exec(output)?.[1];
        return `wrangler deploy${version ? ` (version ${version})` : ""}${deployedUrls.length > 0 ? `, at ${deployedUrls.join(", ")}` : ""}`;
      },
      byHand: () => `npx wrangler deploy${envText}`,
    },
    {
      title: "policies push",
      async run() {
        // policies push validates and tests again, and writes D1 history before KV (cli/policy/store.ts).
        const { code, output } = await withStdout(() => policies(["push", "--remote", "--dir", options.dir, ...(options.by ? ["--by", options.by] : []), ...remoteConfig]));
        if (code !== 0) throw new StepFailure(`gatepass policies push exited ${code} (its reason is printed above)${output ? `:\n${output.trimEnd()}` : ""}`);
        const version = /pushed policy version ([0-9a-f]{12})/.exec(output)?.[1];
        return `pushed ${options.dir}${version ? ` as version ${version}` : ""}`;
      },
      byHand: () => `npx gatepass policies push --remote --dir ${shellWord(options.dir)}${envText}`,
    },
    {
      title: "check",
      run: async () => {
        try {
          return await checkDeployed(issuer, deps);
        } catch (err) {
          const elsewhere = deployedUrls.filter((url) => new URL(url).origin !== new URL(issuer).origin);
          const hint = elsewhere.length > 0 ? `\nwrangler deployed the Worker at ${elsewhere.join(", ")}: route GATEPASS_ISSUER's host to it (a route or custom domain in the wrangler config).` : "";
          throw new StepFailure(`${err instanceof Error ? err.message : String(err)}${hint}`);
        }
      },
      byHand: () => `curl -fsS ${issuer}/healthz && curl -fsS ${issuer}/.well-known/openid-configuration`,
    },
  ];
}

// ---- 1. configuration -------------------------------------------------------------------------

/** The config as wrangler resolves it for --env (an unknown env would silently deploy the top level under another name). */
function readWorker(options: Options): WorkerConfig {
  if (options.env) requireEnvSection(options.config, options.env);
  return readWorkerConfig(options.config, options.env);
}

/** The Worker's own validation (src/config.ts), as a deployed Worker runs it: production mode. */
function checkIssuer(worker: WorkerConfig): string {
  if (worker.vars.GATEPASS_ENV !== undefined) {
    throw new StepFailure(`the config sets GATEPASS_ENV: a deployed Worker must run in production mode; remove it from [vars] (npm run dev puts it in .dev.vars)`);
  }
  try {
    return readConfig({ ...worker.vars } as unknown as Env).issuerUrl;
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new StepFailure(cause instanceof Error ? cause.message : String(err));
  }
}

// ---- 2. policies ------------------------------------------------------------------------------

async function checkPolicies(dir: string): Promise<string> {
  const checked = await checkPolicyDir(dir);
  const errors = checked.findings.filter((finding) => finding.severity === "error");
  if (!checked.ok) throw new StepFailure(`the policies in ${dir}/ are invalid:\n${errors.map(formatFinding).join("\n")}`);
  const { cases, findings } = parseTestFiles(checked.dir.tests, checked.policy);
  if (findings.length > 0) throw new StepFailure(`the policy tests in ${dir}/ do not parse:\n${findings.map(formatFinding).join("\n")}`);
  const failed = cases.filter((testCase) => runCase(checked.policy, testCase).failures.length > 0);
  if (failed.length > 0) {
    throw new StepFailure(`${failed.length} of ${cases.length} policy tests fail: ${failed.map((c) => `${c.file}:${c.line} ${c.name}`).join("; ")}`);
  }
  const { issuers, targets, rules, version } = checked.snapshot;
  // The example policies' stand-in issuer is for `npm run dev`; a deployed Worker refuses it.
  const localOnly = issuers.filter((issuer) => issuer.url.startsWith("http://")).map((issuer) => issuer.name);
  return (
    `${issuers.length} issuers, ${targets.length} targets, ${rules.length} rules (version ${version.slice(0, 12)}); ` +
    `${cases.length === 0 ? "no policy tests" : `${cases.length}/${cases.length} tests pass`}` +
    (localOnly.length > 0 ? `; note: ${localOnly.join(", ")} ${localOnly.length === 1 ? "uses" : "use"} http://, which only local runs accept` : "")
  );
}

// ---- 3, 4. secrets ----------------------------------------------------------------------------

/** Names of the secrets the Worker has; none when the Worker does not exist yet (first deploy). */
async function liveSecrets(flags: string[]): Promise<Set<string>> {
  let output: string;
  try {
    output = await wrangler(["secret", "list", "--format", "json", ...flags]);
  } catch (err) {
    if (/not found\.\s+If this is a new Worker/.test(err instanceof Error ? err.message : "")) return new Set();
    throw err;
  }
  const json = output.slice(output.indexOf("["), output.lastIndexOf("]") + 1);
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch {
    throw new StepFailure(`wrangler secret list printed no JSON list:\n${output}`);
  }
  if (!Array.isArray(list)) throw new StepFailure(`wrangler secret list printed no JSON list:\n${output}`);
  return new Set(list.map((entry) => (entry as { name?: unknown }).name).filter((name): name is string => typeof name === "string"));
}

function secretFile(files: Options["secretFiles"], name: SecretName, workerName: string): string | undefined {
  if (files[name]) return files[name];
  if (!files.dir) return undefined;
  // Named by Worker: one directory can hold the secrets of several environments without mixing them up.
  return path.join(files.dir, name === SIGNING_KEYS ? `${workerName}.signing-keys.json` : `${workerName}.admin-token`);
}

/**
 * The value to set for a secret the Worker lacks: from its file when an earlier run saved it there
 * (and stopped before setting it), else newly generated and saved first, so the operator's copy
 * exists before Cloudflare has the secret (Cloudflare secrets cannot be read back).
 */
async function secretToSet(name: SecretName, file: string | undefined): Promise<{ value: string; note: string }> {
  if (!file) {
    const flag = name === SIGNING_KEYS ? "--signing-keys-file" : "--admin-token-file";
    throw new StepFailure(`the Worker has no ${name}, and a new one needs a file to be kept in (it cannot be read back from Cloudflare): add --secrets-dir DIR (or ${flag} FILE)`);
  }
  // Whatever is found there is uploaded as the Worker's secret: it must be the operator's own (cli/secret-files.ts).
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let existing: string | undefined;
  try {
    await checkSecretDir(dir);
    existing = await readOwnSecretFile(file);
  } catch (err) {
    if (err instanceof SecretFileError) throw new StepFailure(`${err.message}; nothing was uploaded`);
    throw err;
  }
  if (existing !== undefined) {
    const value = existing.trim();
    const problem = secretProblem(name, value);
    if (problem) throw new StepFailure(`${file} exists but ${problem}; it was left as it is: move it away, or choose another --secrets-dir`);
    return { value, note: `${name} from ${file} (saved by an earlier run)` };
  }
  const value = name === SIGNING_KEYS ? serializeSecret(await generateSecret(["ES256", "RS256"], Math.floor(Date.now() / 1000))) : newAdminToken();
  await createPrivateFile(file, `${value}\n`);
  return { value, note: `${name} generated into ${file} (mode 0600)` };
}

function secretProblem(name: SecretName, value: string): string | undefined {
  if (name === ADMIN_TOKEN) return /^[A-Za-z0-9_-]{32,}$/.test(value) ? undefined : "does not hold an admin token (32+ base64url characters)";
  try {
    parseSigningKeySecret(value);
    return undefined;
  } catch (err) {
    return `does not hold a signing key secret (${err instanceof Error ? err.message : String(err)})`;
  }
}

/** 256 random bits, base64url (as `npm run dev` makes the local one). */
function newAdminToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

// ---- 5, 7. remote D1 ----------------------------------------------------------------------------

/**
 * Flags that reach the Worker's D1 database remotely (cli/remote-d1.ts). With database_id in the
 * config, the config itself. Without, the database is found by database_name (created if missing,
 * here only: migrations run before the first deploy, which then binds it by name) and a copy of the
 * config carries its id.
 */
async function remoteD1(worker: WorkerConfig, options: Options, configFlag: string[], scratch: string[]): Promise<{ flags: string[]; note: string }> {
  const env = options.env ? ["--env", options.env] : [];
  const db = requireDbBinding(worker, options.env);
  if (db.database_id) return { flags: [...env, ...configFlag], note: `D1 database ${db.database_id} (from the config)` };
  let uuid = await findDatabase(db.database_name!, [...env, ...configFlag]);
  let created = false;
  if (!uuid) {
    await wrangler(["d1", "create", db.database_name!, ...env, ...configFlag]);
    uuid = await findDatabase(db.database_name!, [...env, ...configFlag]);
    if (!uuid) throw new StepFailure(`wrangler d1 create ${db.database_name} succeeded, but wrangler d1 list does not show it`);
    created = true;
  }
  const dir = await configCopyDir();
  scratch.push(dir); // removed when the deploy ends
  return { flags: ["--config", await writeConfigWithDatabaseId(worker, db, uuid, dir)], note: `${created ? "created" : "found"} D1 database ${db.database_name} (${uuid})` };
}

// ---- 8. check ---------------------------------------------------------------------------------

/** /healthz answers, discovery names GATEPASS_ISSUER, and its jwks_uri (on the same origin) serves keys. Retried while a new route settles. */
async function checkDeployed(issuer: string, deps: DeployDeps): Promise<string> {
  const deadline = deps.now() + DEPLOY_CHECK_TIMEOUT_MS;
  for (;;) {
    const problem = await probe(issuer, deps.fetch);
    if (!problem) return `${issuer}/healthz answers, discovery names ${issuer}, and its jwks_uri serves keys`;
    if (deps.now() + DEPLOY_CHECK_INTERVAL_MS > deadline) throw new StepFailure(`${problem} (still so after ${Math.round(DEPLOY_CHECK_TIMEOUT_MS / 1000)} s)`);
    await deps.sleep(DEPLOY_CHECK_INTERVAL_MS);
  }
}

async function probe(issuer: string, fetcher: typeof fetch): Promise<string | undefined> {
  const get = async (url: string): Promise<Response | string> => {
    try {
      const res = await fetcher(url, { redirect: "manual", signal: AbortSignal.timeout(DEPLOY_CHECK_REQUEST_TIMEOUT_MS) });
      return res.ok ? res : `GET ${url} answered ${res.status}${res.status >= 300 && res.status < 400 ? " (a redirect: GATEPASS_ISSUER must be the URL that serves gatepass itself)" : ""}`;
    } catch (err) {
      return `GET ${url} failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  };
  const health = await get(`${issuer}/healthz`);
  if (typeof health === "string") return health;
  const discoveryUrl = `${issuer}/.well-known/openid-configuration`;
  const discovery = await get(discoveryUrl);
  if (typeof discovery === "string") return discovery;
  const document = (await discovery.json().catch(() => undefined)) as { issuer?: unknown; jwks_uri?: unknown } | undefined;
  if (document?.issuer !== issuer) return `${discoveryUrl} names issuer ${JSON.stringify(document?.issuer)}, not GATEPASS_ISSUER ${issuer}`;
  // Only gatepass's own origin is fetched: the check never follows a document to somewhere else.
  const jwksUri = typeof document.jwks_uri === "string" ? document.jwks_uri : "";
  if (originOf(jwksUri) !== new URL(issuer).origin) return `discovery's jwks_uri ${JSON.stringify(document.jwks_uri)} is not on ${issuer}`;
  const jwks = await get(jwksUri);
  if (typeof jwks === "string") return jwks;
  const keys = ((await jwks.json().catch(() => undefined)) as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) return `${jwksUri} serves no keys`;
  return undefined;
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

// ---- dry run ------------------------------------------------------------------------------------

async function dryRunBundle(flags: string[]): Promise<string> {
  const outdir = await mkdtemp(path.join(tmpdir(), "gatepass-bundle-"));
  try {
    const output = await wrangler(["deploy", "--dry-run", "--outdir", outdir, ...flags]);
    const size = /Total Upload: ([\d.]+ KiB) \/ gzip: ([\d.]+ KiB)/.exec(output);
    // wrangler's table of what the Worker would get: KV, D1, rate limiter and vars, one `env.NAME` per line.
    const bindings = [...output.matchAll(/^env\.(\w+)/gm)].map((match) => match[1]);
    return `${size ? `${size[1]} (gzip ${size[2]})` : "bundled"}; bindings ${bindings.join(", ") || "none"}`;
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

/** Runs another command of this CLI in process, keeping what it prints on stdout for the step's line. */
async function withStdout(command: () => Promise<number>): Promise<{ code: number; output: string }> {
  const write = process.stdout.write;
  let output = "";
  process.stdout.write = ((chunk: string | Uint8Array) => ((output += String(chunk)), true)) as typeof process.stdout.write;
  try {
    return { code: await command(), output };
  } finally {
    process.stdout.write = write;
  }
}

// ---- output -------------------------------------------------------------------------------------

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function indent(text: string): string {
  return text.split("\n").map((line) => `  ${line}`).join("\n");
}

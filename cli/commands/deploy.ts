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
//
// The steps' code is in cli/deploy/; this module parses the arguments and runs the steps in order.

import { rm } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { shellWord } from "../shell-word";
import { USAGE } from "../help";
import { UsageError } from "../usage-error";
import { wrangler } from "../wrangler";
import { checkIssuer, readWorker } from "../deploy/config-check";
import { StepFailure, type Step } from "../deploy/deploy-step";
import { dryRunBundle } from "../deploy/dry-run-bundle";
import { checkDeployed, type DeployDeps } from "../deploy/live-check";
import { checkPolicies } from "../deploy/policy-check";
import { remoteD1 } from "../deploy/remote-d1-flags";
import {
  ADMIN_TOKEN,
  liveSecrets,
  SIGNING_KEYS,
  secretFile,
  secretToSet,
  type SecretFiles,
  type SecretName,
} from "../deploy/secrets-step";
import type { WorkerConfig } from "../remote-d1";
import { run as policies } from "./policies";

export type { DeployDeps } from "../deploy/live-check";

export const usage = USAGE.deploy;

const realDeps: DeployDeps = {
  fetch: (input, init) => fetch(input, init),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => Date.now(),
};

export function run(args: string[]): Promise<number> {
  return deploy(args, realDeps);
}

interface Options {
  env?: string;
  config: string;
  dir: string;
  by?: string;
  dryRun: boolean;
  secretFiles: SecretFiles;
}

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
      for (const [later, skipped] of steps.slice(index + 1).entries())
        out(`  · ${index + later + 2}/${steps.length} ${skipped.title}: not run`);
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
  out(
    dryRun
      ? "\ngatepass deploy --dry-run: the checks pass and the Worker bundles; nothing was changed."
      : "\ngatepass deploy: done.",
  );
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
  if (values["secrets-dir"] !== undefined && explicit)
    throw new UsageError("choose --secrets-dir or the --signing-keys-file/--admin-token-file pair, not both");
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
    byHand: () =>
      `set GATEPASS_ISSUER to your https:// origin under ` +
      `[vars]${options.env ? ` of [env.${options.env}]` : ""} in ${path.relative(".", options.config) || options.config}`,
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
      byHand: () =>
        "npx gatepass keys generate --out FILE for GATEPASS_SIGNING_KEYS; for GATEPASS_ADMIN_TOKEN 32+ random " +
        "base64url characters, e.g. openssl rand -base64 32 | tr '+/' '-_' | tr -d '='",
    },
    {
      title: "secrets set",
      async run() {
        if (missing.size === 0) return "nothing to set";
        // On stdin, never on the command line (which other local users can read).
        await wrangler(["secret", "bulk", ...env, ...configFlag], {
          input: JSON.stringify(Object.fromEntries(missing)),
        });
        return `set ${[...missing.keys()].join(" and ")} with wrangler secret bulk`;
      },
      byHand: () =>
        `npx wrangler secret put GATEPASS_SIGNING_KEYS${envText} < FILE (and GATEPASS_ADMIN_TOKEN the same way)`,
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
      byHand: () =>
        `npx wrangler d1 migrations apply DB --remote${envText} (wrangler 4.86 needs database_id in the config for ` +
        `it; \`npx wrangler d1 list\` shows it)`,
    },
    {
      title: "deploy",
      async run() {
        const output = await wrangler(["deploy", ...env, ...configFlag]);
        deployedUrls = [...new Set(output.match(/https:\/\/[^\s)]+/g) ?? [])];
        const version = /Current Version ID: ([\w-]+)/.exec(output)?.[1];
        return `wrangler deploy${
          version ? ` (version ` + `${version})` : ""
        }${deployedUrls.length > 0 ? `, at ${deployedUrls.join(", ")}` : ""}`;
      },
      byHand: () => `npx wrangler deploy${envText}`,
    },
    {
      title: "policies push",
      async run() {
        // policies push validates and tests again, and writes D1 history before KV (cli/policy/policy-storage.ts).
        const { code, output } = await withStdout(() =>
          policies([
            "push",
            "--remote",
            "--dir",
            options.dir,
            ...(options.by ? ["--by", options.by] : []),
            ...remoteConfig,
          ]),
        );
        if (code !== 0)
          throw new StepFailure(
            `gatepass policies push exited ${code} (its reason is printed ` +
              `above)${output ? `:\n${output.trimEnd()}` : ""}`,
          );
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
          const hint =
            elsewhere.length > 0
              ? `\nwrangler deployed the Worker at ${elsewhere.join(", ")}: route GATEPASS_ISSUER's host to it (a ` +
                `route or custom domain in the wrangler config).`
              : "";
          throw new StepFailure(`${err instanceof Error ? err.message : String(err)}${hint}`);
        }
      },
      byHand: () => `curl -fsS ${issuer}/healthz && curl -fsS ${issuer}/.well-known/openid-configuration`,
    },
  ];
}

/** Runs another command of this CLI in process, keeping what it prints on stdout for the step's line. */
async function withStdout(command: () => Promise<number>): Promise<{ code: number; output: string }> {
  const write = process.stdout.write;
  let output = "";
  process.stdout.write = ((chunk: string | Uint8Array) => (
    (output += String(chunk)),
    true
  )) as typeof process.stdout.write;
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
  return text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
}

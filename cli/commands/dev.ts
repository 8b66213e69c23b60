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
//   The parts live in cli/dev/: dev-setup.ts (the local state), local-policy-push.ts (policies/ at
//   start and on save), wrangler-dev-child.ts (wrangler dev, stop signals forwarded to it),
//   stand-in-issuers.ts and stand-in-tokens.ts (the stand-ins' key and the tokens they sign).
// `gatepass dev token [...]`: a GitLab-shaped (or, with --kind github, GitHub-shaped) CI token signed by
//   that local issuer, for curl.
// The upstream overrides (docs/upstreams.md) pass from the environment to the Worker:
//   AWS_STS_URL='http://127.0.0.1:5000/' npm run dev

import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { readConfig, UPSTREAM_VARS, type Env } from "../../src/config";
import { prepareLocalState } from "../dev/dev-setup";
import { watchPolicies } from "../dev/local-policy-push";
import { step } from "../dev/progress-line";
import { LOCAL_ISSUER, readIssuerKey } from "../dev/stand-in-issuers";
import { mintStandInToken } from "../dev/stand-in-tokens";
import { forwardStopSignals, runWranglerDev, signalExitCode, stopSignal } from "../dev/wrangler-dev-child";
import { USAGE } from "../help";
import { UsageError } from "../usage-error";

export const usage = USAGE.dev;

export async function run(args: string[]): Promise<number> {
  if (args[0] === "token") return printToken(args.slice(1));
  const { values } = parseArgs({ args, options: { port: { type: "string", default: "8787" } } });
  if (!/^[1-9]\d{0,4}$/.test(values.port) || Number(values.port) > 65535)
    throw new UsageError(`--port takes a port number from 1 to 65535, not '${values.port}'`);
  // gatepass names itself by GATEPASS_ISSUER (discovery, minted iss, gcloud token_url), so on another
  // port it must say so rather than keep wrangler.toml's 8787.
  const url = `http://127.0.0.1:${values.port}`;
  const upstreams = upstreamOverrides(url);
  if (typeof upstreams === "string") {
    process.stderr.write(`gatepass dev: ${upstreams}\n`);
    return 1;
  }
  if (!(await portIsFree(Number(values.port)))) {
    process.stderr.write(
      `gatepass dev: 127.0.0.1:${values.port} is in use (another gatepass dev?); stop it or pass --port\n`,
    );
    return 2;
  }
  forwardStopSignals();
  try {
    await prepareLocalState();
  } catch (err) {
    const stopping = stopSignal();
    if (stopping) return signalExitCode(stopping);
    throw err;
  }
  for (const [name, value] of upstreams) step(`${name}=${value} (from the environment)`);
  process.stderr.write(
    `\ngatepass: starting wrangler dev on ${url}\n` +
      `  try:  curl -s -H "Authorization: Bearer $(npx gatepass dev token)" ${url}/v1/whoami\n\n`,
  );
  // Development only (the Worker refuses it elsewhere): every request re-reads the active policy, so a saved edit is
  // live at once.
  const vars = [["GATEPASS_ISSUER", url], ["GATEPASS_POLICY_RECHECK", "every-request"], ...upstreams].flatMap(
    ([name, value]) => ["--var", `${name}:${value}`],
  );
  const stopWatching = watchPolicies();
  try {
    return await runWranglerDev(["dev", "--ip", "127.0.0.1", "--port", values.port!, ...vars]);
  } finally {
    stopWatching();
  }
}

/**
 * Whether 127.0.0.1:port can be bound now (wrangler binds it a few seconds later; a race loses with wrangler's own
 * error).
 */
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
  const overrides = UPSTREAM_VARS.flatMap((name) =>
    process.env[name] ? [[name, process.env[name]] as [string, string]] : [],
  );
  try {
    readConfig({
      GATEPASS_ISSUER: issuer,
      GATEPASS_ENV: "development",
      ...Object.fromEntries(overrides),
    } as unknown as Env);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? cause.message : String(err);
  }
  return overrides;
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
  for (const [option, allowed] of [
    ["protected", ["true", "false"]],
    ["ref-type", ["branch", "tag"]],
    ["kind", ["gitlab", "github"]],
  ] as const) {
    const value = values[option]!;
    if (!(allowed as readonly string[]).includes(value))
      throw new UsageError(`--${option} takes ${allowed.join(" or ")}, not '${value}'`);
  }
  if (!/^[1-9]\d{0,6}$/.test(values.ttl!))
    throw new UsageError(`--ttl takes a number of seconds (1 to 9999999), not '${values.ttl}'`);
  const jwk = await readIssuerKey();
  if (!jwk) {
    process.stderr.write("gatepass: no local issuer key yet; run `npm run dev` first\n");
    return 1;
  }
  const token = await mintStandInToken(jwk, {
    kind: values.kind === "github" ? "github" : "gitlab",
    project: values.project!,
    ref: values.ref!,
    refType: values["ref-type"]!,
    protectedRef: values.protected!,
    pipelineSource: values["pipeline-source"]!,
    event: values.event!,
    aud: values.aud!,
    ttl: Number(values.ttl),
    now: Math.floor(Date.now() / 1000),
  });
  process.stdout.write(`${token}\n`);
  return 0;
}

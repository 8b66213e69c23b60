// `gatepass deploy` step 1: the wrangler config (for --env) holds a GATEPASS_ISSUER the Worker accepts in production
// mode.

import { readConfig, type Env } from "../../src/config";
import { readWorkerConfig, requireEnvSection, type WorkerConfig } from "../remote-d1";
import { StepFailure } from "./deploy-step";

/**
 * The config as wrangler resolves it for --env (an unknown env would silently deploy the top level under another name).
 */
export function readWorker(options: { config: string; env?: string }): WorkerConfig {
  if (options.env) requireEnvSection(options.config, options.env);
  return readWorkerConfig(options.config, options.env);
}

/** The Worker's own validation (src/config.ts), as a deployed Worker runs it: production mode. */
export function checkIssuer(worker: WorkerConfig): string {
  if (worker.vars.GATEPASS_ENV !== undefined) {
    throw new StepFailure(
      `the config sets GATEPASS_ENV: a deployed Worker must run in production mode; remove it from [vars] (npm run ` +
        `dev puts it in .dev.vars)`,
    );
  }
  try {
    return readConfig({ ...worker.vars } as unknown as Env).issuerUrl;
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new StepFailure(cause instanceof Error ? cause.message : String(err));
  }
}

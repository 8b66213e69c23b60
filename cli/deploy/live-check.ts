// `gatepass deploy` step 8: the deployed Worker answers at GATEPASS_ISSUER, the URL relying parties use.

import { DEPLOY_CHECK_INTERVAL_MS, DEPLOY_CHECK_REQUEST_TIMEOUT_MS, DEPLOY_CHECK_TIMEOUT_MS } from "../../src/limits";
import { StepFailure } from "./deploy-step";

/** What the check step needs from outside; tests replace it. */
export interface DeployDeps {
  fetch: typeof fetch;
  sleep(ms: number): Promise<void>;
  now(): number;
}

/**
 * /healthz answers, discovery names GATEPASS_ISSUER, and its jwks_uri (on the same origin) serves keys. Retried while
 * a new route settles.
 */
export async function checkDeployed(issuer: string, deps: DeployDeps): Promise<string> {
  const deadline = deps.now() + DEPLOY_CHECK_TIMEOUT_MS;
  for (;;) {
    const problem = await probe(issuer, deps.fetch);
    if (!problem) return `${issuer}/healthz answers, discovery names ${issuer}, and its jwks_uri serves keys`;
    if (deps.now() + DEPLOY_CHECK_INTERVAL_MS > deadline)
      throw new StepFailure(`${problem} (still so after ${Math.round(DEPLOY_CHECK_TIMEOUT_MS / 1000)} s)`);
    await deps.sleep(DEPLOY_CHECK_INTERVAL_MS);
  }
}

async function probe(issuer: string, fetcher: typeof fetch): Promise<string | undefined> {
  const get = async (url: string): Promise<Response | string> => {
    try {
      const res = await fetcher(url, {
        redirect: "manual",
        signal: AbortSignal.timeout(DEPLOY_CHECK_REQUEST_TIMEOUT_MS),
      });
      return res.ok
        ? res
        : `GET ${url} answered ${res.status}${
            res.status >= 300 && res.status < 400
              ? " (a redirect: " + "GATEPASS_ISSUER must be the URL that serves gatepass itself)"
              : ""
          }`;
    } catch (err) {
      return `GET ${url} failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  };
  const health = await get(`${issuer}/healthz`);
  if (typeof health === "string") return health;
  const discoveryUrl = `${issuer}/.well-known/openid-configuration`;
  const discovery = await get(discoveryUrl);
  if (typeof discovery === "string") return discovery;
  const document = (await discovery.json().catch(() => undefined)) as
    { issuer?: unknown; jwks_uri?: unknown } | undefined;
  if (document?.issuer !== issuer)
    return `${discoveryUrl} names issuer ${JSON.stringify(document?.issuer)}, not GATEPASS_ISSUER ${issuer}`;
  // Only gatepass's own origin is fetched: the check never follows a document to somewhere else.
  const jwksUri = typeof document.jwks_uri === "string" ? document.jwks_uri : "";
  if (originOf(jwksUri) !== new URL(issuer).origin)
    return `discovery's jwks_uri ${JSON.stringify(document.jwks_uri)} is not on ${issuer}`;
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

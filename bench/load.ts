// `npm run load`: 200 concurrent connections for 30 s against gatepass under `wrangler dev` (real
// workerd, local KV/D1), exchanging CI tokens for a GCP access token through loopback stand-ins of
// Google STS + IAM Credentials. Fails (exit 1) on any non-2xx response or transport error.
// Tokens come from many projects so the per-project rate limit (120/min) is not what is measured.
import autocannon from "autocannon";
import { generateSecret, serializeSecret } from "../src/signing-keys/signing-key-rotation";
import { ACTIVE_SNAPSHOT_KEY } from "../src/policy/active-policy";
import type { Target } from "../src/types";
import { benchCiIssuer } from "./ci-issuer";
import { startStandins } from "../test/support/standins";
import { upstreamsHandler } from "../test/support/standins/upstreams";
import { upstreamUrlVars } from "../test/support/standins/urls";
import { startWranglerDev } from "../test/support/wrangler-dev";
import { buildTestSnapshot } from "../test/worker/exchange/policy-snapshot";

const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS ?? 200);
const DURATION_SECONDS = Number(process.env.LOAD_SECONDS ?? 30);
const PROJECTS = 2_000;
const WIP = "projects/123456/locations/global/workloadIdentityPools/ci-pool/providers/gatepass";
const SA = "deployer@proj.iam.gserviceaccount.com";

async function main(): Promise<number> {
  const standins = await startStandins([upstreamsHandler]);
  const ns = crypto.randomUUID();
  const up = `${standins.url}/up/${ns}`;
  const { issuer, jwk: ciJwk, tokens: mintTokens } = benchCiIssuer(`${up}/ci`);
  const target: Target = {
    name: "gcp-deploy",
    type: "gcp",
    privileged: false,
    signing_alg: "ES256",
    max_lifetime_seconds: 3600,
    workload_identity_provider: WIP,
    service_account: SA,
    scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    audience: `//iam.googleapis.com/${WIP}`,
  };
  const snapshot = await buildTestSnapshot({
    issuers: [issuer],
    targets: [target],
    rules: [
      {
        name: "infra-main",
        issuer: "ci",
        match: { namespace_path: "platform", ref_type: "branch", ref: "main", ref_protected: "true" },
        allow: [target.name],
      },
    ],
  });
  const now = Math.floor(Date.now() / 1000);
  const tokens = mintTokens(PROJECTS);

  const gatepass = await startWranglerDev({
    vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development", ...upstreamUrlVars(up) }),
    secrets: { GATEPASS_SIGNING_KEYS: serializeSecret(await generateSecret(["ES256"], now - 600)) },
    kv: [{ binding: "POLICIES", key: ACTIVE_SNAPSHOT_KEY, value: snapshot }],
  });
  try {
    await fetch(`${up}/_control`, {
      method: "PUT",
      body: JSON.stringify({
        trust: { issuer: gatepass.url },
        ciJwks: { keys: [ciJwk] },
        gcp: { provider: WIP, serviceAccounts: { [SA]: ["target:gcp-deploy"] } },
      }),
    });
    let next = 0;
    const result = await autocannon({
      url: `${gatepass.url}/v1/credentials/gcp-deploy`,
      connections: CONNECTIONS,
      duration: DURATION_SECONDS,
      requests: [
        {
          method: "POST",
          setupRequest: (req) => ({
            ...req,
            headers: { ...req.headers, authorization: `Bearer ${tokens[next++ % PROJECTS]}` },
          }),
        },
      ],
    });
    const errors = result.errors + result.timeouts + result.non2xx;
    console.log(
      `load: ${CONNECTIONS} connections, ${DURATION_SECONDS} s, POST /v1/credentials/gcp-deploy (verify → policy → mint ES256 → STS + IAM stand-ins)`,
    );
    console.log(`  requests ${result.requests.total}  (${result.requests.average.toFixed(0)}/s average)`);
    console.log(`  latency  p50 ${result.latency.p50} ms  p99 ${result.latency.p99} ms  max ${result.latency.max} ms`);
    console.log(
      `  2xx ${result["2xx"]}  non-2xx ${result.non2xx}  errors ${result.errors}  timeouts ${result.timeouts}`,
    );
    return errors === 0 && result["2xx"] > 0 ? 0 : 1;
  } finally {
    await gatepass.stop();
    await standins.close();
  }
}

process.exit(await main());

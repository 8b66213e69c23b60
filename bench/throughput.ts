// `npm run bench -- throughput`: exchange throughput and latency for an `oidc` target against
// gatepass under `wrangler dev`, next to a bare Worker doing only the same verify + sign
// (bench/bare-worker.ts), in the same run. Target: gatepass ≥ 50% of the bare Worker's throughput.
import autocannon from "autocannon";
import path from "node:path";
import { generateSecret, serializeSecret } from "../src/mint/rotation";
import { ACTIVE_SNAPSHOT_KEY } from "../src/policy/store";
import type { Target } from "../src/types";
import { benchCiIssuer } from "./ci-issuer";
import { startStandins } from "../test/support/standins";
import { upstreamsHandler } from "../test/support/standins/upstreams";
import { startWranglerDev, type WranglerDev } from "../test/support/wrangler-dev";
import { buildTestSnapshot } from "../test/worker/exchange/policy-snapshot";

const CONNECTIONS = 50;
const SECONDS = 10;

export async function run(): Promise<void> {
  const standins = await startStandins([upstreamsHandler]);
  const up = `${standins.url}/up/${crypto.randomUUID()}`;
  const { issuer, jwk: ciJwk, tokens: mintTokens } = benchCiIssuer(`${up}/ci`);
  const target: Target = { name: "oidc-rp", type: "oidc", privileged: false, signing_alg: "ES256", max_lifetime_seconds: 3600, audience: "https://rp.example.com" };
  const now = Math.floor(Date.now() / 1000);
  const tokens = mintTokens(2_000);
  const snapshot = await buildTestSnapshot({
    issuers: [issuer],
    targets: [target],
    rules: [{ name: "platform", issuer: "ci", match: { namespace_path: "platform", ref_type: "branch", ref: "main" }, allow: [target.name] }],
  });
  await fetch(`${up}/_control`, { method: "PUT", body: JSON.stringify({ ciJwks: { keys: [ciJwk] } }) });

  const secret = await generateSecret(["ES256"], now - 600);
  const signingJwk = secret.keys.find((k) => k.alg === "ES256")!;
  const servers: WranglerDev[] = [];
  try {
    const bare = await startWranglerDev({
      config: path.resolve("bench/bare.wrangler.toml"),
      secrets: { CI_PUBLIC_JWK: JSON.stringify(ciJwk), SIGNING_JWK: JSON.stringify({ kty: signingJwk.kty, crv: signingJwk.crv, x: signingJwk.x, y: signingJwk.y, d: signingJwk.d }) },
    });
    servers.push(bare);
    const gatepass = await startWranglerDev({
      vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development" }),
      secrets: { GATEPASS_SIGNING_KEYS: serializeSecret(secret) },
      kv: [{ binding: "POLICIES", key: ACTIVE_SNAPSHOT_KEY, value: snapshot }],
    });
    servers.push(gatepass);

    const load = async (url: string) => {
      let next = 0;
      return autocannon({
        url, connections: CONNECTIONS, duration: SECONDS,
        requests: [{ method: "POST", setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` } }) }],
      });
    };
    await load(`${gatepass.url}/v1/credentials/oidc-rp`); // warm-up: keys, policy, JIT
    const bareResult = await load(`${bare.url}/exchange`);
    const gatepassResult = await load(`${gatepass.url}/v1/credentials/oidc-rp`);
    const line = (name: string, r: autocannon.Result) =>
      `  ${name.padEnd(10)} ${r.requests.average.toFixed(0).padStart(6)} req/s   p50 ${String(r.latency.p50).padStart(4)} ms   p99 ${String(r.latency.p99).padStart(4)} ms   non-2xx ${r.non2xx}  errors ${r.errors}`;
    console.log(`throughput (wrangler dev, ${CONNECTIONS} connections × ${SECONDS} s, oidc target: verify RS256 → policy → mint ES256)`);
    console.log(line("bare", bareResult));
    console.log(line("gatepass", gatepassResult));
    const share = gatepassResult.requests.average / bareResult.requests.average;
    console.log(`  gatepass = ${(share * 100).toFixed(0)}% of the bare Worker (target ≥ 50%) ${share >= 0.5 ? "OK" : "BELOW TARGET"}`);
  } finally {
    for (const server of servers) await server.stop();
    await standins.close();
  }
}

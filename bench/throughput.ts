// `npm run bench -- throughput`: exchange throughput and latency for an `oidc` target against
// gatepass under `wrangler dev`, next to a bare Worker doing only the same verify + sign
// (bench/bare-worker.ts), in the same run. Target: gatepass ≥ 50% of the bare Worker's throughput.
import autocannon from "autocannon";
import path from "node:path";
import { generateSecret, serializeSecret } from "../src/mint/rotation";
import { ACTIVE_SNAPSHOT_KEY } from "../src/policy/store";
import type { Target } from "../src/types";
import { wrangler } from "../cli/wrangler";
import { benchCiIssuer } from "./ci-issuer";
import { startStandins } from "../test/support/standins";
import { upstreamsHandler } from "../test/support/standins/upstreams";
import { startWranglerDev, type WranglerDev } from "../test/support/wrangler-dev";
import { buildTestSnapshot } from "../test/worker/exchange/policy-snapshot";

const CONNECTIONS = 50;
const SECONDS = 10;
const ROUNDS = 5;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const line = (name: string, r: autocannon.Result) =>
  `    ${name.padEnd(10)} ${r.requests.average.toFixed(0).padStart(6)} req/s   p50 ${String(r.latency.p50).padStart(4)} ms   p99 ${String(r.latency.p99).padStart(4)} ms   non-2xx ${r.non2xx}  errors ${r.errors}`;

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
    const startBare = (vars: Record<string, string>) => startWranglerDev({
      config: path.resolve("bench/bare.wrangler.toml"),
      quiet: true,
      vars,
      secrets: { CI_PUBLIC_JWK: JSON.stringify(ciJwk), SIGNING_JWK: JSON.stringify({ kty: signingJwk.kty, crv: signingJwk.crv, x: signingJwk.x, y: signingJwk.y, d: signingJwk.d }) },
    });
    const bare = await startBare({});
    servers.push(bare);
    const bareLogging = await startBare({ LOG_EACH_REQUEST: "1" });
    servers.push(bareLogging);
    const gatepass = await startWranglerDev({
      vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development" }),
      secrets: { GATEPASS_SIGNING_KEYS: serializeSecret(secret) },
      kv: [{ binding: "POLICIES", key: ACTIVE_SNAPSHOT_KEY, value: snapshot }],
      quiet: true,
    });
    servers.push(gatepass);

    let gatepassRequests = 0;
    const load = async (url: string) => {
      let next = 0;
      return autocannon({
        url, connections: CONNECTIONS, duration: SECONDS,
        requests: [{ method: "POST", setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` } }) }],
      });
    };
    const loadGatepass = async () => {
      const result = await load(`${gatepass.url}/v1/credentials/oidc-rp`);
      gatepassRequests += result.requests.total;
      return result;
    };
    await loadGatepass(); // warm-up: keys, policy, JIT
    await load(`${bare.url}/exchange`);
    await load(`${bareLogging.url}/exchange`);
    // Alternate the two Workers over several rounds and compare medians: on a shared machine one
    // round alone swings by ±20%.
    console.log(`throughput (wrangler dev, ${CONNECTIONS} connections × ${SECONDS} s × ${ROUNDS} rounds, oidc target: verify RS256 → policy → mint ES256)`);
    const rounds: { bare: autocannon.Result; bareLogging: autocannon.Result; gatepass: autocannon.Result }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const result = { bare: await load(`${bare.url}/exchange`), bareLogging: await load(`${bareLogging.url}/exchange`), gatepass: await loadGatepass() };
      rounds.push(result);
      console.log(`  round ${round}`);
      console.log(line("bare", result.bare));
      console.log(line("bare+log", result.bareLogging));
      console.log(line("gatepass", result.gatepass));
    }
    const rate = (pick: (r: (typeof rounds)[number]) => autocannon.Result) => median(rounds.map((r) => pick(r).requests.average));
    const [bareRate, bareLoggingRate, gatepassRate] = [rate((r) => r.bare), rate((r) => r.bareLogging), rate((r) => r.gatepass)];
    const share = gatepassRate / bareRate;
    console.log(`  medians: bare ${bareRate.toFixed(0)} req/s, bare+log ${bareLoggingRate.toFixed(0)} req/s, gatepass ${gatepassRate.toFixed(0)} req/s (p50 ${median(rounds.map((r) => r.gatepass.latency.p50))} ms, p99 ${median(rounds.map((r) => r.gatepass.latency.p99))} ms)`);
    console.log(`  gatepass = ${((gatepassRate / bareLoggingRate) * 100).toFixed(0)}% of the bare Worker that also logs one line per request`);
    // Batched audit must keep up: every request answered has its event in D1.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const [{ results }] = JSON.parse(await wrangler(["d1", "execute", "DB", "--json", "--local", "--persist-to", gatepass.persistTo, "--command", "SELECT count(*) AS n FROM audit_events"])) as [{ results: [{ n: number }] }];
    console.log(`  audit: ${results[0].n} events in D1 for ${gatepassRequests} requests answered`);
    console.log(`  gatepass = ${(share * 100).toFixed(0)}% of the bare Worker (target ≥ 50%) ${share >= 0.5 ? "OK" : "BELOW TARGET"}`);
  } finally {
    for (const server of servers) await server.stop();
    await standins.close();
  }
}

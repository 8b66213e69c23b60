// Bench Worker (run by bench/verify.ts inside local workerd): times nothing itself — Workers' clocks
// stand still during execution — it only runs N iterations per request so Node can time it outside.
//   GET /setup          make an RS256 key, push it for a private issuer, sign one GitLab-shaped token
//   GET /verify?n=N     N warm Verifier.verify calls (memory-cached keys: no KV, no network)
//   GET /webcrypto?n=N  N bare crypto.subtle.verify calls on the same token (the baseline)
//   GET /sign?alg=A&n=N N signatures (ES256 or RS256) of that token's claims with gatepass's minting code
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import type { Env } from "../src/config";
import { defaultDeps } from "../src/deps";
import { KeyRing, SIGNING_ALGS, type SigningAlg } from "../src/signing-keys/signing-key-secret";
import { generateSecret } from "../src/signing-keys/signing-key-rotation";
import { signJwt } from "../src/mint/minted-token";
import { validatePublicJwks } from "../src/issuer-keys/key-set-validation";
import { Verifier } from "../src/verify/verifier";
import { BENCH_ISSUER } from "./bench-issuer";

const ISSUER = BENCH_ISSUER;

const verifier = new Verifier(defaultDeps);
let token = "";
let bare: { key: CryptoKey; data: Uint8Array; signature: Uint8Array } | undefined;
let signing: { keys: KeyRing; claims: object } | undefined;

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") ?? "0");
    if (url.pathname === "/setup") {
      await setup(env);
      await verifier.verify(token, [ISSUER], env, (p) => ctx.waitUntil(p)); // warm: import the key once
      return new Response("ready");
    }
    if (url.pathname === "/verify") {
      for (let i = 0; i < n; i++) await verifier.verify(token, [ISSUER], env, (p) => ctx.waitUntil(p));
      return new Response(String(n));
    }
    if (url.pathname === "/webcrypto" && bare) {
      for (let i = 0; i < n; i++) {
        if (!(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", bare.key, bare.signature, bare.data)))
          throw new Error("bad signature");
      }
      return new Response(String(n));
    }
    const alg = url.searchParams.get("alg") as SigningAlg;
    if (url.pathname === "/sign" && signing && SIGNING_ALGS.includes(alg)) {
      for (let i = 0; i < n; i++) await signJwt(signing.keys, alg, signing.claims);
      return new Response(String(n));
    }
    return new Response("not found", { status: 404 });
  },
} satisfies ExportedHandler<Env>;

async function setup(env: Env): Promise<void> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench-key", alg: "RS256", use: "sig" };
  await verifier.storePushedKeys(ISSUER, validatePublicJwks({ keys: [jwk] }).keys, env);
  const now = Math.floor(Date.now() / 1000);
  token = await new SignJWT({
    namespace_id: "72",
    namespace_path: "platform",
    project_id: "1234",
    project_path: "platform/infra",
    user_id: "42",
    user_login: "alice",
    user_email: "alice@example.com",
    user_access_level: "maintainer",
    pipeline_id: "98765",
    pipeline_source: "push",
    job_id: "555001",
    ref: "main",
    ref_type: "branch",
    ref_path: "refs/heads/main",
    ref_protected: "true",
    runner_id: 17,
    runner_environment: "gitlab-hosted",
    sha: "8f2b1c0e5d3a4b6c7d8e9f0a1b2c3d4e5f6a7b8c",
    project_visibility: "private",
    ci_config_ref_uri: "gitlab.bench.example/platform/infra//.gitlab-ci.yml@refs/heads/main",
    ci_config_sha: "8f2b1c0e5d3a4b6c7d8e9f0a1b2c3d4e5f6a7b8c",
    environment: "production",
    environment_protected: "false",
    deployment_tier: "production",
    environment_action: "start",
    job_project_id: "1234",
    job_project_path: "platform/infra",
    job_namespace_id: "72",
    job_namespace_path: "platform",
    groups_direct: ["platform"],
    jti: crypto.randomUUID(),
    nbf: now - 5,
  })
    .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: "bench-key" })
    .setIssuer(ISSUER.url)
    .setAudience(ISSUER.audiences[0]!)
    .setSubject("project_path:platform/infra:ref_type:branch:ref:main")
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);

  const [header, payload, signature] = token.split(".") as [string, string, string];
  const key = await crypto.subtle.importKey(
    "jwk",
    jwk as JsonWebKey,
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const sig = Uint8Array.from(atob(signature.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  bare = { key, data: new TextEncoder().encode(`${header}.${payload}`), signature: sig };
  signing = {
    keys: await KeyRing.import(await generateSecret(SIGNING_ALGS, now)),
    claims: JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))),
  };
}

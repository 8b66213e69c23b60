// Bench Worker (run by bench/refusals.ts inside local workerd): what one refused token costs the
// Verifier, by reason. Workers' clocks stand still during execution, so it only runs N refusals per
// request and Node times the requests from outside.
//   GET /setup              push an RS256 key for two issuers (one pins its kid), sign the tokens
//   GET /refuse?kind=K&n=N  N Verifier.verify calls that refuse token K (n=0: an empty request)
//   GET /verify?n=N         N accepted verifications (the reference)
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey as JoseKey } from "jose";
import type { Env } from "../src/config";
import { defaultDeps } from "../src/deps";
import type { IssuerConfig } from "../src/types";
import { validatePublicJwks } from "../src/issuer-keys/key-set-validation";
import { Verifier } from "../src/verify/verifier";
import { BENCH_ISSUER } from "./bench-issuer";

const ISSUER = BENCH_ISSUER;
const PINNED: IssuerConfig = {
  ...ISSUER,
  name: "bench-pinned",
  url: "https://pinned.bench.example",
  allowed_kids: ["pinned-key"],
};
const ISSUERS = [ISSUER, PINNED];

/** The refusals compared: an unknown issuer against the ways a configured issuer's forged token fails, for RS256 and ES256 headers. */
const KINDS = [
  "unknown_issuer",
  "bad_signature",
  "unknown_kid",
  "pinned_kid",
  "unknown_issuer_es256",
  "algorithm_not_allowed",
] as const;
type Kind = (typeof KINDS)[number];

const verifier = new Verifier(defaultDeps);
const tokens = new Map<Kind | "valid", string>();

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") ?? "0");
    const waitUntil = (p: Promise<unknown>) => ctx.waitUntil(p);
    if (url.pathname === "/setup") {
      await setup(env);
      await verifier.verify(tokens.get("valid")!, ISSUERS, env, waitUntil); // imports the key once
      // One refusal of each kind first: the unknown-kid reload and any lazy import happen here.
      const codes: string[] = [];
      for (const kind of KINDS) codes.push(`${kind}: ${await refusal(tokens.get(kind)!, env, waitUntil)}`);
      return new Response(codes.join("\n"));
    }
    if (url.pathname === "/verify") {
      for (let i = 0; i < n; i++) await verifier.verify(tokens.get("valid")!, ISSUERS, env, waitUntil);
      return new Response(String(n));
    }
    const kind = url.searchParams.get("kind") as Kind;
    if (url.pathname === "/refuse" && KINDS.includes(kind)) {
      const token = tokens.get(kind)!;
      for (let i = 0; i < n; i++) await refusal(token, env, waitUntil);
      return new Response(String(n));
    }
    return new Response("not found", { status: 404 });
  },
} satisfies ExportedHandler<Env>;

async function refusal(token: string, env: Env, waitUntil: (p: Promise<unknown>) => void): Promise<string> {
  try {
    await verifier.verify(token, ISSUERS, env, waitUntil);
  } catch (err) {
    const { code, conceals } = err as { code?: string; conceals?: { code: string } };
    return conceals ? `${code} (recorded as ${conceals.code})` : (code ?? String(err));
  }
  throw new Error("a forged token verified");
}

async function setup(env: Env): Promise<void> {
  const pushed = await generateKeyPair("RS256", { extractable: true });
  const forger = await generateKeyPair("RS256", { extractable: true });
  const ec = await generateKeyPair("ES256", { extractable: true });
  const jwk = (kid: string) => exportJWK(pushed.publicKey).then((k) => ({ ...k, kid, alg: "RS256", use: "sig" }));
  await verifier.storePushedKeys(ISSUER, validatePublicJwks({ keys: [await jwk("bench-key")] }).keys, env);
  await verifier.storePushedKeys(PINNED, validatePublicJwks({ keys: [await jwk("pinned-key")] }).keys, env);

  const sign = (iss: string, kid: string, key: JoseKey, alg = "RS256") => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      namespace_id: "72",
      namespace_path: "platform",
      project_id: "1234",
      project_path: "platform/infra",
      user_id: "42",
      user_login: "alice",
      user_email: "alice@example.com",
      pipeline_id: "98765",
      pipeline_source: "push",
      job_id: "555001",
      ref: "main",
      ref_type: "branch",
      ref_path: "refs/heads/main",
      ref_protected: "true",
      jti: crypto.randomUUID(),
      nbf: now - 5,
    })
      .setProtectedHeader({ alg, typ: "JWT", kid })
      .setIssuer(iss)
      .setAudience(ISSUER.audiences[0]!)
      .setSubject("project_path:platform/infra:ref_type:branch:ref:main")
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(key);
  };
  tokens.set("valid", await sign(ISSUER.url, "bench-key", pushed.privateKey));
  tokens.set("unknown_issuer", await sign("https://gitlab.unknown.example", "bench-key", forger.privateKey));
  tokens.set("bad_signature", await sign(ISSUER.url, "bench-key", forger.privateKey));
  tokens.set("algorithm_not_allowed", await sign(ISSUER.url, "bench-key", ec.privateKey, "ES256"));
  tokens.set("unknown_issuer_es256", await sign("https://gitlab.unknown.example", "bench-key", ec.privateKey, "ES256"));
  tokens.set("unknown_kid", await sign(ISSUER.url, "other-key", forger.privateKey));
  tokens.set("pinned_kid", await sign(PINNED.url, "other-key", forger.privateKey));
}

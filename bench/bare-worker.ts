// Baseline for the throughput benchmark: only what one exchange must do at the least — verify an
// RS256 CI token against one known key and sign an ES256 JWT — with no issuer lookup, policy,
// audit, logging or routing. gatepass's throughput is reported as a share of this Worker's.
// With LOG_EACH_REQUEST=1 it also writes one JSON log line per request, as gatepass must: under
// `wrangler dev` every console call crosses the inspector protocol, a cost production does not pay,
// so this variant shows what gatepass adds beyond that.
import { Buffer } from "node:buffer";

interface BareEnv {
  CI_PUBLIC_JWK: string;
  SIGNING_JWK: string;
  LOG_EACH_REQUEST?: string;
}

const encoder = new TextEncoder();
const b64url = (bytes: ArrayBuffer | Uint8Array | string) => Buffer.from(typeof bytes === "string" ? encoder.encode(bytes) : new Uint8Array(bytes)).toString("base64url");
let keys: Promise<{ verify: CryptoKey; sign: CryptoKey }> | undefined;

export default {
  async fetch(request: Request, env: BareEnv): Promise<Response> {
    if (new URL(request.url).pathname === "/healthz") return new Response("ok");
    keys ??= (async () => ({
      verify: await crypto.subtle.importKey("jwk", JSON.parse(env.CI_PUBLIC_JWK), { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]),
      sign: await crypto.subtle.importKey("jwk", JSON.parse(env.SIGNING_JWK), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]),
    }))();
    const { verify, sign } = await keys;
    const [header, payload, signature] = (request.headers.get("Authorization") ?? "").slice("Bearer ".length).split(".");
    if (!header || !payload || !signature) return new Response("malformed", { status: 401 });
    const valid = await crypto.subtle.verify("RSASSA-PKCS1-v1_5", verify, Buffer.from(signature, "base64url"), encoder.encode(`${header}.${payload}`));
    if (!valid) return new Response("bad signature", { status: 401 });
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp: number; sub: string };
    const now = Math.floor(Date.now() / 1000);
    if (claims.exp < now) return new Response("expired", { status: 401 });
    const input = `${b64url(JSON.stringify({ alg: "ES256", typ: "JWT" }))}.${b64url(JSON.stringify({ iss: "bare", sub: claims.sub, aud: "rp", iat: now, exp: now + 300, jti: crypto.randomUUID() }))}`;
    const minted = `${input}.${b64url(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, sign, encoder.encode(input)))}`;
    if (env.LOG_EACH_REQUEST === "1") console.log(JSON.stringify({ level: "info", event: "request", time: new Date().toISOString(), path: "/exchange", status: 200, sub: claims.sub }));
    return Response.json({ access_token: minted, token_type: "Bearer", expires_in: 300 });
  },
};

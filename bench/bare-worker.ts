// Baseline for the throughput benchmark: only what one exchange must do at the least — verify an
// RS256 CI token against one known key (signature, issuer, audience, lifetime) and sign the same
// ES256 token gatepass mints for an `oidc` target (same header, same claims, same response body) —
// with no issuer lookup, policy, audit, logging or routing. gatepass's throughput is reported as a
// share of this Worker's.
// With LOG_EACH_REQUEST=1 it also writes one JSON log line per request, as gatepass must: under
// `wrangler dev` every console call crosses the inspector protocol, a cost production does not pay,
// so this variant shows what gatepass adds beyond that.
import { Buffer } from "node:buffer";
import { COPIED_CI_CLAIMS } from "../src/mint/minted-token";

interface BareEnv {
  CI_ISSUER: string;
  CI_PUBLIC_JWK: string;
  SIGNING_JWK: string;
  LOG_EACH_REQUEST?: string;
}

const AUDIENCE = "https://rp.example.com";
const encoder = new TextEncoder();
const b64url = (bytes: ArrayBuffer | Uint8Array | string) =>
  Buffer.from(typeof bytes === "string" ? encoder.encode(bytes) : new Uint8Array(bytes)).toString("base64url");
let keys: Promise<{ verify: CryptoKey; sign: CryptoKey; kid: string }> | undefined;

export default {
  async fetch(request: Request, env: BareEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    keys ??= (async () => {
      const signingJwk = JSON.parse(env.SIGNING_JWK) as JsonWebKey & { kid: string };
      return {
        verify: await crypto.subtle.importKey(
          "jwk",
          JSON.parse(env.CI_PUBLIC_JWK),
          { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
          false,
          ["verify"],
        ),
        sign: await crypto.subtle.importKey("jwk", signingJwk, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]),
        kid: signingJwk.kid,
      };
    })();
    const { verify, sign, kid } = await keys;
    const [header, payload, signature] = (request.headers.get("Authorization") ?? "")
      .slice("Bearer ".length)
      .split(".");
    if (!header || !payload || !signature) return new Response("malformed", { status: 401 });
    const valid = await crypto.subtle.verify(
      "RSASSA-PKCS1-v1_5",
      verify,
      Buffer.from(signature, "base64url"),
      encoder.encode(`${header}.${payload}`),
    );
    if (!valid) return new Response("bad signature", { status: 401 });
    const source = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown> & {
      iss: string;
      aud: string;
      exp: number;
      nbf: number;
    };
    const now = Math.floor(Date.now() / 1000);
    if (source.iss !== env.CI_ISSUER || source.aud !== "gatepass" || source.exp < now || source.nbf > now)
      return new Response("invalid claims", { status: 401 });

    const exp = Math.min(source.exp, now + 300);
    const claims: Record<string, unknown> = {
      iss: url.origin,
      sub: "target:oidc-rp",
      aud: AUDIENCE,
      iat: now,
      nbf: now,
      exp,
      jti: crypto.randomUUID(),
      target: "oidc-rp",
      rule: "platform",
      source_issuer: source.iss,
      source_sub: source.sub,
      source_jti: source.jti,
    };
    for (const name of COPIED_CI_CLAIMS) if (typeof source[name] === "string") claims[name] = source[name];
    const input = `${b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid }))}.${b64url(JSON.stringify(claims))}`;
    const minted = `${input}.${b64url(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, sign, encoder.encode(input)))}`;
    if (env.LOG_EACH_REQUEST === "1")
      console.log(
        JSON.stringify({
          level: "info",
          event: "request",
          time: new Date().toISOString(),
          path: url.pathname,
          status: 200,
          sub: source.sub,
        }),
      );
    return Response.json({
      target: "oidc-rp",
      provider: "oidc",
      expires_at: new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
      expires_in: exp - now,
      id_token: minted,
      audience: AUDIENCE,
    });
  },
};

// What the `oidc` exchange benches share: a stand-in CI issuer on loopback (keys by discovery), its
// tokens, a policy snapshot allowing them the `oidc-rp` target, gatepass's signing key, and the same
// material in the form the bare Worker (bench/bare-worker.ts) takes it.
import { generateSecret, serializeSecret } from "../src/signing-keys/signing-key-rotation";
import { ACTIVE_SNAPSHOT_KEY } from "../src/policy/active-policy";
import type { Target } from "../src/types";
import { benchCiIssuer } from "./ci-issuer";
import { startStandins } from "../test/support/standins";
import { upstreamsHandler } from "../test/support/standins/upstreams";
import type { WranglerDevOptions } from "../test/support/wrangler-dev";
import { buildTestSnapshot } from "../test/worker/exchange/policy-snapshot";

const OIDC_TARGET: Target = {
  name: "oidc-rp",
  type: "oidc",
  privileged: false,
  signing_alg: "ES256",
  max_lifetime_seconds: 3600,
  audience: "https://rp.example.com",
};

export interface OidcBench {
  /** GitLab-shaped CI tokens, one project each (the per-project rate limit must not be what is measured). */
  tokens: string[];
  /** The CI issuer's URL: the bare Worker's CI_ISSUER. */
  ciIssuer: string;
  /** Bindings for gatepass: signing key and the policy snapshot in KV. */
  gatepass: Pick<WranglerDevOptions, "secrets" | "kv">;
  /** The bare Worker's secrets: the CI issuer's public JWK and the same signing key. */
  bareSecrets: Record<string, string>;
  close(): Promise<void>;
}

export async function prepareOidcBench(tokenCount: number): Promise<OidcBench> {
  const standins = await startStandins([upstreamsHandler]);
  const up = `${standins.url}/up/${crypto.randomUUID()}`;
  const { issuer, jwk: ciJwk, tokens: mintTokens } = benchCiIssuer(`${up}/ci`);
  const snapshot = await buildTestSnapshot({
    issuers: [issuer],
    targets: [OIDC_TARGET],
    rules: [
      {
        name: "platform",
        issuer: "ci",
        match: { namespace_path: "platform", ref_type: "branch", ref: "main" },
        allow: [OIDC_TARGET.name],
      },
    ],
  });
  await fetch(`${up}/_control`, { method: "PUT", body: JSON.stringify({ ciJwks: { keys: [ciJwk] } }) });
  const secret = await generateSecret(["ES256"], Math.floor(Date.now() / 1000) - 600);
  const { kty, crv, x, y, d, kid } = secret.keys.find((k) => k.alg === "ES256")!;
  return {
    tokens: mintTokens(tokenCount),
    ciIssuer: issuer.url,
    gatepass: {
      secrets: { GATEPASS_SIGNING_KEYS: serializeSecret(secret) },
      kv: [{ binding: "POLICIES", key: ACTIVE_SNAPSHOT_KEY, value: snapshot }],
    },
    bareSecrets: { CI_PUBLIC_JWK: JSON.stringify(ciJwk), SIGNING_JWK: JSON.stringify({ kty, crv, x, y, d, kid }) },
    close: () => standins.close(),
  };
}

// A stand-in CI issuer for load runs: its config (keys by discovery from the loopback stand-in), its
// public JWK, and GitLab-shaped tokens from many projects of the `platform` namespace, so that the
// per-project rate limit is not what a load run measures.
import { generateKeyPairSync, sign } from "node:crypto";
import type { IssuerConfig } from "../src/types";

const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

export function benchCiIssuer(url: string) {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: "jwk" }), kid: "ci-1", alg: "RS256", use: "sig" };
  const issuer: IssuerConfig = {
    name: "ci",
    url,
    kind: "gitlab",
    aliases: [],
    audiences: ["gatepass"],
    algorithms: ["RS256"],
    keys: { source: "discovery" },
    max_token_age_seconds: 3600,
    accept_legacy_ci_job_jwt: false,
  };
  /** One protected-main token per project `platform/p<i>`. */
  const tokens = (count: number): string[] => {
    const now = Math.floor(Date.now() / 1000);
    return Array.from({ length: count }, (_, i) => {
      const input = `${part({ alg: "RS256", typ: "JWT", kid: jwk.kid })}.${part({
        iss: url,
        aud: "gatepass",
        sub: `project_path:platform/p${i}:ref_type:branch:ref:main`,
        iat: now,
        nbf: now - 5,
        exp: now + 3000,
        jti: crypto.randomUUID(),
        namespace_id: "10",
        namespace_path: "platform",
        project_id: String(1000 + i),
        project_path: `platform/p${i}`,
        user_id: "7",
        user_login: "bench",
        pipeline_id: "900",
        pipeline_source: "push",
        job_id: String(5000 + i),
        ref: "main",
        ref_type: "branch",
        ref_protected: "true",
      })}`;
      return `${input}.${sign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
    });
  };
  return { issuer, jwk, tokens };
}

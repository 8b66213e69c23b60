// Identities for offline evaluation (policy tests, explain): claims as GitLab sends them, or taken from
// a token's payload, normalised by the Worker's own code (so a claim the Worker refuses is refused here
// too). Nothing here verifies a signature: it answers "what would the policy decide for these claims".

import { isPlainObject } from "../../src/encoding";
import type { IssuerConfig, VerifiedIdentity } from "../../src/types";
import { normalizeClaims } from "../../src/verify/claim-normalisation";
import { canonicalIssuerUrl } from "../../src/verify/issuer-url";

/** The payload of a compact JWT, without verifying it. */
export function decodeTokenPayload(token: string): Record<string, unknown> {
  const parts = token.trim().split(".");
  if (parts.length !== 3) throw new Error("the token is not a compact JWT (three dot-separated parts)");
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
  } catch {
    throw new Error("the token's payload is not base64url-encoded JSON");
  }
  if (!isPlainObject(payload)) throw new Error("the token's payload is not a JSON object");
  return payload;
}

/** The issuer named, or the one whose URL or alias is the claims' `iss`, or the only one configured. */
export function resolveIssuer(issuers: readonly IssuerConfig[], name: string | undefined, iss: unknown): IssuerConfig {
  if (name !== undefined) {
    const issuer = issuers.find((i) => i.name === name);
    if (!issuer) throw new Error(`unknown issuer '${name}'; configured: ${issuers.map((i) => i.name).join(", ")}`);
    return issuer;
  }
  if (typeof iss === "string") {
    const url = canonicalIssuerUrl(iss);
    const issuer = issuers.find((i) => i.url === url || (url !== undefined && i.aliases.includes(url)));
    if (!issuer) throw new Error(`no configured issuer has the URL '${iss}'`);
    return issuer;
  }
  if (issuers.length === 1) return issuers[0]!;
  throw new Error("say which issuer the claims come from (issuer name, or an iss claim)");
}

export function offlineIdentity(issuer: IssuerConfig, raw: Record<string, unknown>): VerifiedIdentity {
  const claims = normalizeClaims(raw, issuer.kind);
  const seconds = (name: string) => (typeof raw[name] === "number" ? (raw[name] as number) : 0);
  return {
    issuer: issuer.name,
    issuerUrl: issuer.url,
    claims,
    tokenSha256: "",
    issuedAt: seconds("iat"),
    expiresAt: seconds("exp"),
    legacy: false,
  };
}

// Identities for offline evaluation (policy tests, explain): claims as GitLab sends them, normalised the
// way gatepass compares them (strings; `true`/`false` and ids as strings), or taken from a token's
// payload. Nothing here verifies a signature: it answers "what would the policy decide for these claims".

import type { IssuerConfig, NormalizedClaims, VerifiedIdentity } from "../../src/types";
import { canonicalIssuerUrl } from "../../src/verify/issuer-url";

/** Scalars become strings, arrays keep their scalar elements as strings; objects and null are dropped. */
export function normalizeClaims(raw: Record<string, unknown>): NormalizedClaims {
  const out: Record<string, string | string[]> = {};
  const scalar = (v: unknown): string | undefined =>
    typeof v === "string" ? v : typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v)) ? String(v) : undefined;
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) out[name] = value.map(scalar).filter((v): v is string => v !== undefined);
    else {
      const text = scalar(value);
      if (text !== undefined) out[name] = text;
    }
  }
  return out;
}

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
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) throw new Error("the token's payload is not a JSON object");
  return payload as Record<string, unknown>;
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
  const claims = normalizeClaims(raw);
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

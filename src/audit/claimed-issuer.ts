// The issuer a refused token claims, for its audit row's claimed_issuer (never `issuer`, which holds
// only verified issuers): so an operator can find, say, every key_unknown after an issuer's key
// rotation. Read from the payload without any verification: the configured issuer's name when the
// token's iss is its URL or an alias, else the iss itself (clipped to MAX_CLAIMED_VALUE_LENGTH in
// buildAuditEvent). Anyone can put anything there, which is why the column says "claimed".

import { decodeBase64urlJson, isPlainObject } from "../encoding";
import { MAX_TOKEN_BYTES } from "../limits";
import type { IssuerConfig } from "../types";

export function claimedIssuerOf(token: string, issuers: readonly IssuerConfig[]): string | undefined {
  if (token.length > MAX_TOKEN_BYTES) return undefined;
  const payload = decodeBase64urlJson(token.split(".")[1] ?? "");
  const iss = isPlainObject(payload) ? payload.iss : undefined;
  if (typeof iss !== "string" || iss === "") return undefined;
  const spelled = iss.replace(/\/+$/, "");
  const configured = issuers.find((issuer) => issuer.url === spelled || issuer.aliases.includes(spelled));
  return configured?.name ?? iss;
}

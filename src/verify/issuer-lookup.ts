// Maps a token's `iss` to a configured issuer. Only configured issuers are ever looked up, so an
// unknown or look-alike `iss` is refused here, before any key lookup or network request.

import { GatepassError } from "../errors";
import type { IssuerConfig } from "../types";
import { canonicalIssuerUrl } from "./issuer-url";

/** Canonical URL (and alias) → issuer, built once per issuer list (a policy snapshot keeps its array). */
const indexes = new WeakMap<readonly IssuerConfig[], ReadonlyMap<string, IssuerConfig>>();

function indexOf(issuers: readonly IssuerConfig[]): ReadonlyMap<string, IssuerConfig> {
  let index = indexes.get(issuers);
  if (!index) {
    const built = new Map<string, IssuerConfig>();
    for (const issuer of issuers) {
      for (const url of [issuer.url, ...issuer.aliases]) {
        const canonical = canonicalIssuerUrl(url);
        if (canonical && !built.has(canonical)) built.set(canonical, issuer);
      }
    }
    index = built;
    indexes.set(issuers, index);
  }
  return index;
}

/**
 * The configured issuer for `iss`. Quirks are normalised (missing scheme, one trailing slash, host
 * case, default port) but nothing else: `http://` never matches an `https://` issuer.
 */
export function findIssuer(iss: unknown, issuers: readonly IssuerConfig[]): IssuerConfig {
  if (typeof iss !== "string")
    throw new GatepassError("issuer_unknown", { description: "The token has no iss claim (a string)." });
  const index = indexOf(issuers);
  // Most tokens carry the canonical spelling already: skip URL parsing for them.
  const issuer = index.get(iss) ?? lookupCanonical(index, iss);
  if (!issuer) throw new GatepassError("issuer_unknown");
  return issuer;
}

function lookupCanonical(index: ReadonlyMap<string, IssuerConfig>, iss: string): IssuerConfig | undefined {
  const canonical = canonicalIssuerUrl(iss);
  return canonical === undefined ? undefined : index.get(canonical);
}

/** A legacy CI_JOB_JWT carries the bare host as `iss` (no scheme). */
export function isBareHostIssuer(iss: string): boolean {
  return !iss.includes("://");
}

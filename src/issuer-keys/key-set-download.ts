// The network layer of the key cache: an issuer's key set fetched from its discovery document and
// jwks_uri (never for pushed issuers), through the bounded fetch of issuer-fetch.ts.

import type { Env } from "../config";
import { nowSeconds, type Deps } from "../deps";
import { isPlainObject } from "../encoding";
import {
  JWKS_DEFAULT_FRESH_SECONDS,
  JWKS_MAX_FRESH_SECONDS,
  JWKS_MIN_FRESH_SECONDS,
  MAX_DISCOVERY_BYTES,
  MAX_JWKS_BYTES,
} from "../limits";
import { log } from "../log";
import type { IssuerConfig } from "../types";
import { fetchIssuerJson } from "./issuer-fetch";
import { usablePublicKeys } from "./key-set-validation";
import type { StoredKeySet } from "./stored-key-set";

/** Cache-Control max-age, honoured within [JWKS_MIN_FRESH_SECONDS, JWKS_MAX_FRESH_SECONDS]. */
export function freshSeconds(cacheControl: string | null): number {
  if (!cacheControl) return JWKS_DEFAULT_FRESH_SECONDS;
  if (/(^|[\s,])(no-store|no-cache)([\s,=]|$)/i.test(cacheControl)) return JWKS_MIN_FRESH_SECONDS;
  const match = /(?:^|[\s,])max-age\s*=\s*"?(\d{1,10})"?/i.exec(cacheControl);
  if (!match) return JWKS_DEFAULT_FRESH_SECONDS;
  return Math.min(JWKS_MAX_FRESH_SECONDS, Math.max(JWKS_MIN_FRESH_SECONDS, Number(match[1])));
}

/** A discovery `jwks_uri` naming another (often internal) host is moved to the issuer's own origin. */
export function jwksUrlOnIssuerOrigin(jwksUri: string, issuerUrl: string): string {
  const url = new URL(jwksUri);
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new Error(`jwks_uri ${jwksUri} is not an http(s) URL`);
  return `${new URL(issuerUrl).origin}${url.pathname}`;
}

/** The issuer's current key set from the network; throws when it cannot be fetched or holds no usable key. */
export async function downloadKeySet(
  deps: Deps,
  issuer: IssuerConfig,
  env: Env,
  fetchTimeoutMs: number,
): Promise<StoredKeySet> {
  const development = env.GATEPASS_ENV === "development";
  const common = { timeoutMs: fetchTimeoutMs, development };
  let jwksUrl: string;
  if (issuer.keys.source === "discovery") {
    const origin = new URL(issuer.url).origin;
    const discovery = await fetchIssuerJson(deps, `${issuer.url}/.well-known/openid-configuration`, {
      ...common,
      origin,
      maxBytes: MAX_DISCOVERY_BYTES,
    });
    const jwksUri = isPlainObject(discovery.body) ? discovery.body.jwks_uri : undefined;
    if (typeof jwksUri !== "string") throw new Error("the discovery document has no jwks_uri");
    jwksUrl = jwksUrlOnIssuerOrigin(jwksUri, issuer.url);
  } else if (issuer.keys.source === "jwks_uri") {
    jwksUrl = issuer.keys.jwks_uri;
  } else {
    throw new Error("pushed keys are never fetched");
  }
  const jwks = await fetchIssuerJson(deps, jwksUrl, {
    ...common,
    origin: new URL(jwksUrl).origin,
    maxBytes: MAX_JWKS_BYTES,
  });
  const { keys, dropped } = usablePublicKeys(jwks.body);
  if (dropped.length > 0) log("warn", "jwks_keys_dropped", { issuer: issuer.name, dropped });
  if (keys.length === 0) throw new Error(`${jwksUrl} holds no usable public keys`);
  const now = nowSeconds(deps);
  const set: StoredKeySet = {
    issuer_url: issuer.url,
    source: issuer.keys.source,
    keys,
    fetched_at: now,
    fresh_until: now + freshSeconds(jwks.headers.get("Cache-Control")),
  };
  if (issuer.keys.source === "jwks_uri") set.jwks_uri = jwksUrl;
  return set;
}

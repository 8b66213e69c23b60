// One canonical spelling for issuer URLs, used for both configured issuers and a token's `iss`, so
// that quirks (no scheme, trailing slash, host case, default port) compare equal.

import { isAcceptableIssuerUrl } from "../config";

/**
 * `gitlab.example.com` → `https://gitlab.example.com`; `HTTPS://GitLab.Example.com/gitlab/` →
 * `https://gitlab.example.com/gitlab`. Returns undefined for anything that is not a plain
 * http(s) URL without query, fragment or credentials.
 */
export function canonicalIssuerUrl(raw: string): string | undefined {
  if (raw.length === 0 || raw.length > 512 || /\s/.test(raw)) return undefined;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  if (url.search || url.hash || url.username || url.password || !url.hostname) return undefined;
  // URL already lower-cases the host and drops default ports.
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${url.host}${path}`;
}

/** Whether gatepass may fetch from this issuer-derived URL (https, or http on loopback in development). */
export function isFetchableUrl(raw: string, development: boolean): boolean {
  return isAcceptableIssuerUrl(raw, development);
}

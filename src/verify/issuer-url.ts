// One canonical spelling for issuer URLs, used for both configured issuers and a token's `iss`, so
// that quirks (no scheme, trailing slash, host case, default port) compare equal.

/** Printable ASCII without `%` or a backslash: the URL parser would decode, fold or convert anything else. */
const PLAIN_URL_TEXT = /^[\x21-\x24\x26-\x5b\x5d-\x7e]+$/;
const DOT_SEGMENT = /\/\.{1,2}(\/|$)/;

/**
 * `gitlab.example.com` → `https://gitlab.example.com`; `HTTPS://GitLab.Example.com/gitlab/` →
 * `https://gitlab.example.com/gitlab`. Returns undefined for anything that is not a plain
 * http(s) URL without query, fragment or credentials, and for spellings the URL parser would
 * rewrite into an issuer's (dot segments, percent-escapes, backslashes, non-ASCII or numeric-shorthand
 * hosts): only scheme case and absence, host case, a default port and trailing slashes are forgiven.
 */
export function canonicalIssuerUrl(raw: string): string | undefined {
  if (raw.length > 512 || !PLAIN_URL_TEXT.test(raw)) return undefined;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  if (url.search || url.hash || url.username || url.password || !url.hostname) return undefined;
  const [authority = "", ...segments] = withScheme.slice(withScheme.indexOf("://") + 3).split("/");
  if (DOT_SEGMENT.test(`/${segments.join("/")}`)) return undefined;
  // The host as written, case aside: `0x7f.1` parses to 127.0.0.1, which no one configured.
  if (authority.replace(/:\d*$/, "").toLowerCase() !== url.hostname) return undefined;
  // URL already lower-cases the host and drops default ports.
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${url.host}${path}`;
}

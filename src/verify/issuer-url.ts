// One canonical spelling for issuer URLs, used for both configured issuers and a token's `iss`, so
// that quirks (no scheme, trailing slash, host case, default port) compare equal.

/**
 * Printable ASCII without `%`, a backslash, `?` or `#`: the URL parser would decode, fold or convert
 * the first two, and it drops an empty query or fragment (`/?`) without a trace.
 */
const PLAIN_URL_TEXT = /^[\x21-\x22\x24\x26-\x3e\x40-\x5b\x5d-\x7e]+$/;
const DOT_SEGMENT = /\/\.{1,2}(\/|$)/;
/** A port as the URL parser would print it: `:019102` and `:` parse, but are other spellings. */
const PORT_AS_PRINTED = /^[1-9][0-9]{0,4}$/;

/**
 * `gitlab.example.com` → `https://gitlab.example.com`; `HTTPS://GitLab.Example.com/gitlab/` →
 * `https://gitlab.example.com/gitlab`. Returns undefined for anything that is not a plain
 * http(s) URL without query, fragment or credentials, and for spellings the URL parser would
 * rewrite into an issuer's (dot segments, percent-escapes, backslashes, non-ASCII or numeric-shorthand
 * hosts, an empty query, a port with leading zeros, empty path segments): only scheme case and
 * absence, host case, a default port and one trailing slash are forgiven.
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
  const path = `/${segments.join("/")}`;
  // `//` anywhere (`https://host//`, `/gitlab//x`) is an empty segment, not the one trailing slash forgiven.
  if (DOT_SEGMENT.test(path) || path.includes("//")) return undefined;
  const port = /:(\d*)$/.exec(authority);
  if (port && !PORT_AS_PRINTED.test(port[1]!)) return undefined;
  // The host as written, case aside: `0x7f.1` parses to 127.0.0.1, which no one configured.
  if (authority.slice(0, port ? port.index : undefined).toLowerCase() !== url.hostname) return undefined;
  // URL already lower-cases the host and drops default ports.
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/$/, "")}`;
}

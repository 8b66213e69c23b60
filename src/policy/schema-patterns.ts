// The spellings every section of a policy shares: issuer and target names, claim names, audiences and
// URLs. Written once here so an issuer, a target and a rule cannot come to disagree on what a name is.

import { isLoopbackHost } from "../config";
import { str } from "./shape-spec";

/** Issuer and target names; routes use it to refuse a target name no policy can contain before any work. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** An issuer or target name, wherever one is written (its own name, a rule's issuer, a rule's allow). */
export const nameSpec = str({
  pattern: NAME_PATTERN,
  expected: "a name of lower-case letters, digits, '.', '_' and '-' (at most 63 characters)",
});

/** Printable ASCII; `__proto__` is refused because plain objects cannot hold it as an ordinary key. */
export const CLAIM_NAME = /^(?!__proto__$)[A-Za-z0-9_][\x21-\x7e]{0,127}$/;

/** An audience an issuer accepts or a target's minted token carries. */
export const audienceSpec = str({ pattern: /^\S+$/, expected: "an audience without spaces" });

/** https anywhere; http only on loopback (the local development issuer: the Worker refuses http
 *  outside development mode, whatever the policy says). */
export function httpsOrLoopbackUrl(raw: string): { problem: string } | { value: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: `'${raw}' is not an absolute URL` };
  }
  if (url.username || url.password || url.search || url.hash)
    return { problem: "URLs must not carry credentials, a query or a fragment" };
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) {
    return { problem: "use https:// (http:// is only allowed for loopback hosts in local development)" };
  }
  return { value: raw };
}

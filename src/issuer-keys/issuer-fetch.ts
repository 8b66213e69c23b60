// Bounded HTTP for issuer documents: allowed schemes only, a timeout, redirects followed only within
// one origin, and a size cap enforced while reading (Content-Length is checked but not trusted).

import { isAcceptableIssuerUrl } from "../config";
import type { Deps } from "../deps";
import { readCapped } from "../http/capped-body";
import { JWKS_MAX_REDIRECTS } from "../limits";

export interface FetchedJson {
  body: unknown;
  headers: Headers;
}

export interface IssuerFetchOptions {
  /** Redirects may only stay on this origin. */
  origin: string;
  maxBytes: number;
  timeoutMs: number;
  /** http allowed on loopback (dev and tests). */
  development: boolean;
}

/** GET a JSON document; throws a plain Error with an internal reason on any failure. */
export async function fetchIssuerJson(deps: Deps, url: string, options: IssuerFetchOptions): Promise<FetchedJson> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  let current = url;
  for (let hop = 0; ; hop++) {
    if (!isAcceptableIssuerUrl(current, options.development))
      throw new Error(`refusing to fetch ${current}: not an https URL`);
    if (new URL(current).origin !== options.origin)
      throw new Error(`refusing to fetch ${current}: not on ${options.origin}`);
    let response: Response;
    try {
      response = await deps.fetch(current, {
        method: "GET",
        redirect: "manual",
        signal,
        headers: { Accept: "application/json" },
      });
    } catch (err) {
      throw new Error(
        `fetching ${current} failed: ${signal.aborted ? `no answer within ${options.timeoutMs} ms` : String(err)}`,
      );
    }
    if (response.status >= 300 && response.status < 400 && response.status !== 304) {
      await response.body?.cancel();
      const location = response.headers.get("Location");
      if (!location || hop >= JWKS_MAX_REDIRECTS)
        throw new Error(`${current} redirected (HTTP ${response.status}) too often or without a Location`);
      current = new URL(location, current).href;
      continue;
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`${current} answered HTTP ${response.status}`);
    }
    const text = await readCapped(response, options.maxBytes, signal).catch((err: unknown) => {
      throw new Error(
        `reading ${current} failed: ${
          signal.aborted
            ? `no answer within ` + `${options.timeoutMs} ms`
            : err instanceof Error
              ? err.message
              : String(err)
        }`,
      );
    });
    try {
      return { body: JSON.parse(text), headers: response.headers };
    } catch {
      throw new Error(`${current} did not answer with JSON`);
    }
  }
}

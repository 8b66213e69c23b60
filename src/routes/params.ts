// Request parameters for the exchange endpoints: from the query string and a JSON or form body,
// size-capped, strict (unknown or repeated parameters are refused, so typos never pass silently).

import type { Context } from "hono";
import type { AppEnv } from "../app";
import { GatepassError } from "../errors";
import { MAX_PARAM_VALUE_LENGTH, MAX_REQUEST_BODY_BYTES, MAX_SCOPE_LENGTH, MAX_SCOPES } from "../limits";
import { BodyTooLargeError, readCapped } from "../http/body";

export type Params = Record<string, string>;

/**
 * `bodyOnly`: parameters that carry a token (subject_token). In the URL they end up in proxy,
 * load-balancer and browser logs, so there they are refused (request_invalid) before the token is
 * looked at, whatever else the request says.
 */
export async function readParams(c: Context<AppEnv>, allowed: readonly string[], bodyOnly: readonly string[] = []): Promise<Params> {
  const params: Params = {};
  const add = (name: string, value: string) => {
    if (!allowed.includes(name)) throw invalid(`Unknown parameter ${printable(name)}; allowed: ${allowed.join(", ")}.`);
    if (name in params) throw invalid(`Parameter ${name} is given more than once.`);
    params[name] = value;
  };
  const url = new URL(c.req.url);
  for (const name of url.searchParams.keys()) {
    if (bodyOnly.includes(name)) {
      throw invalid(`${name} carries a token: send it in the request body (application/x-www-form-urlencoded), never in the URL, which proxies and logs record.`);
    }
  }
  for (const [name, value] of url.searchParams) add(name, value);
  for (const [name, value] of await bodyParams(c)) add(name, value);
  return params;
}

async function bodyParams(c: Context<AppEnv>): Promise<Array<[string, string]>> {
  if (c.req.method === "GET" || c.req.method === "HEAD") return [];
  const text = await readBodyCapped(c.req.raw);
  if (text.trim() === "") return [];
  const type = (c.req.header("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json") {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw invalid("The JSON body does not parse.");
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid("The JSON body must be an object.");
    return Object.entries(value).map(([name, v]) => {
      if (typeof v === "string") return [name, v];
      if (typeof v === "number" && Number.isFinite(v)) return [name, String(v)];
      throw invalid(`Parameter ${printable(name)} must be a string or a number.`);
    });
  }
  if (type === "application/x-www-form-urlencoded" || type === "") return [...new URLSearchParams(text)];
  throw invalid("Send parameters as application/x-www-form-urlencoded or application/json.");
}

/** Reads the body, refusing more than MAX_REQUEST_BODY_BYTES whatever Content-Length claims. */
async function readBodyCapped(request: Request): Promise<string> {
  // The runtime enforces Content-Length framing, so a declared empty body needs no stream read (curl -X POST).
  if (request.body === null || request.headers.get("Content-Length") === "0") return "";
  try {
    return await readCapped(request, MAX_REQUEST_BODY_BYTES);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new GatepassError("request_too_large");
    throw invalid("The body could not be read as UTF-8 text.");
  }
}

// ---- value parsers --------------------------------------------------------------------------

/** `900`, `900s`, `15m`, `1h` → seconds. */
export function parseLifetime(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^([1-9][0-9]{0,5})([smh]?)$/.exec(value);
  if (!match) throw invalid("lifetime must be a positive number of seconds, or a number followed by s, m or h.");
  return Number(match[1]) * ({ "": 1, s: 1, m: 60, h: 3600 } as const)[match[2] as "" | "s" | "m" | "h"];
}

/** Space- or comma-separated scopes, deduplicated. */
export function parseScopes(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const scopes = [...new Set(value.split(/[\s,]+/).filter((s) => s !== ""))];
  if (scopes.length === 0 || scopes.length > MAX_SCOPES || scopes.some((s) => !/^[\x21-\x7e]+$/.test(s) || s.length > MAX_SCOPE_LENGTH)) {
    throw invalid(`scope must list 1-${MAX_SCOPES} scopes separated by spaces or commas.`);
  }
  return scopes;
}

/** A free-form value that gatepass forwards or echoes (audience, file path): printable, bounded. */
export function parsePrintable(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > MAX_PARAM_VALUE_LENGTH || !/^[\x20-\x7e]+$/.test(value)) {
    throw invalid(`${name} must be 1-${MAX_PARAM_VALUE_LENGTH} printable ASCII characters.`);
  }
  return value;
}

export function invalid(description: string): GatepassError {
  return new GatepassError("request_invalid", { description });
}

function printable(name: string): string {
  return JSON.stringify(name.slice(0, 40));
}

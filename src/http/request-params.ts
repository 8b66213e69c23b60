// Request parameters for every endpoint that takes them (the exchange endpoints, whoami): from the query string and a
// JSON or form body,
// size-capped, strict (unknown or repeated parameters are refused, so typos never pass silently).

import type { Context } from "hono";
import type { AppEnv } from "./app-env";
import { GatepassError } from "../errors";
import {
  MAX_PARAM_VALUE_LENGTH,
  MAX_REQUEST_BODY_BYTES,
  MAX_REQUEST_PARAMETERS,
  MAX_SCOPE_LENGTH,
  MAX_SCOPES,
} from "../limits";
import { BodyTooLargeError, readCapped } from "./capped-body";

export type Params = Record<string, string>;

/**
 * `bodyOnly`: parameters that carry a token (subject_token). In the URL they end up in proxy,
 * load-balancer and browser logs, so there they are refused (request_invalid) before the token is
 * looked at, whatever else the request says.
 */
export async function readParams(
  c: Context<AppEnv>,
  allowed: readonly string[],
  bodyOnly: readonly string[] = [],
): Promise<Params> {
  const params: Params = {};
  const add = (name: string, value: string) => {
    if (!allowed.includes(name)) throw unknownParameter(name, allowed);
    if (name in params) throw repeatedParameter(name, allowed);
    params[name] = value;
  };
  const url = new URL(c.req.url);
  const inQuery = fieldCount(url.search.slice(1), MAX_REQUEST_PARAMETERS);
  if (inQuery > MAX_REQUEST_PARAMETERS) throw tooMany(allowed);
  for (const name of url.searchParams.keys()) {
    if (bodyOnly.includes(name)) {
      throw invalid(
        `${name} carries a token: send it in the request body (application/x-www-form-urlencoded), never in the ` +
          `URL, which proxies and logs record.`,
      );
    }
  }
  // Both counted before either is taken apart.
  const fromBody = await bodyParams(c, allowed, MAX_REQUEST_PARAMETERS - inQuery);
  for (const [name, value] of url.searchParams) add(name, value);
  for (const [name, value] of fromBody) add(name, value);
  return params;
}

/** Reads the body's parameters; more than `room` of them are refused before they are parsed. */
async function bodyParams(
  c: Context<AppEnv>,
  allowed: readonly string[],
  room: number,
): Promise<Array<[string, string]>> {
  if (c.req.method === "GET" || c.req.method === "HEAD") return [];
  const text = await readBodyCapped(c.req.raw);
  if (text.trim() === "") return [];
  const type = (c.req.header("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json") {
    checkFlatJson(text, room, allowed);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw invalid("The JSON body does not parse.");
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw notAnObject();
    return Object.entries(value).map(([name, v]) => {
      if (typeof v === "string") return [name, v];
      if (typeof v === "number" && Number.isFinite(v)) return [name, String(v)];
      throw invalid(`Parameter ${printable(name)} must be a string or a number.`);
    });
  }
  if (type === "application/x-www-form-urlencoded" || type === "") {
    if (fieldCount(text, room) > room) throw tooMany(allowed);
    return [...new URLSearchParams(text)];
  }
  throw invalid("Send parameters as application/x-www-form-urlencoded or application/json.");
}

/** `&`-separated fields in a query string or form body (empty ones too), counted no further than `limit + 1`. */
function fieldCount(text: string, limit: number): number {
  if (text === "") return 0;
  let count = 1;
  for (let at = text.indexOf("&"); at !== -1 && count <= limit; at = text.indexOf("&", at + 1)) count++;
  return count;
}

/**
 * A JSON body of parameters is one flat object of at most `limit` members, each named once. One pass
 * over the text checks that before JSON.parse builds anything (JSON.parse would keep a repeated
 * name's last value without a trace): nesting is refused at its first bracket, counting stops at the
 * member past the limit, and each member's name is decoded once, so `"a"` and `"\u0061"` are one name.
 */
function checkFlatJson(text: string, limit: number, allowed: readonly string[]): void {
  let depth = 0;
  let members = 0;
  let expectName = false;
  const names = new Set<string>();
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === 0x22 /* " */) {
      const start = i;
      // Skip the string, escapes included (JSON.parse judges whether it is well formed).
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      if (depth !== 1 || !expectName) continue;
      expectName = false;
      if (++members > limit) throw tooMany(allowed);
      const name = memberName(text.slice(start, i + 1));
      if (names.has(name)) throw repeatedParameter(name, allowed);
      names.add(name);
    } else if (char === 0x7b /* { */ || char === 0x5b /* [ */) {
      // A top-level array is refused before JSON.parse builds it: its strings are no names to check.
      if (depth === 0 && char === 0x5b) throw notAnObject();
      if (++depth > 1)
        throw invalid("The JSON body must be one object whose values are strings or numbers; nothing nested.");
      expectName = true;
    } else if (char === 0x7d /* } */ || char === 0x5d /* ] */) {
      depth--;
      expectName = false;
    } else if (char === 0x2c /* , */ && depth === 1) {
      expectName = true;
    }
  }
}

/** A member name as JSON.parse reads it (escapes decoded). */
function memberName(quoted: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    throw invalid("The JSON body does not parse.");
  }
}

function notAnObject(): GatepassError {
  return invalid("The JSON body must be an object.");
}

function unknownParameter(name: string, allowed: readonly string[]): GatepassError {
  return invalid(`Unknown parameter ${printable(name)}; allowed: ${allowed.join(", ")}.`);
}

function repeatedParameter(name: string, allowed: readonly string[]): GatepassError {
  return invalid(`Parameter ${allowed.includes(name) ? name : printable(name)} is given more than once.`);
}

function tooMany(allowed: readonly string[]): GatepassError {
  return invalid(
    `The request has more than ${MAX_REQUEST_PARAMETERS} parameters; this endpoint takes at most: ` +
      `${allowed.join(", ")}.`,
  );
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
  if (
    scopes.length === 0 ||
    scopes.length > MAX_SCOPES ||
    scopes.some((s) => !/^[\x21-\x7e]+$/.test(s) || s.length > MAX_SCOPE_LENGTH)
  ) {
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

// One upstream HTTP call with the resilience every provider needs: a per-attempt timeout, retries
// with exponential backoff and full jitter for 429/5xx/network errors only, a size-capped body read,
// and the mapping of failures to stable codes. The upstream's raw body goes to the log, never to the
// caller: callers get the upstream's own error code (details.upstream_error) and a hint.

import type { Deps } from "../deps";
import { isPlainObject } from "../encoding";
import { GatepassError } from "../errors";
import {
  MAX_UPSTREAM_BODY_BYTES,
  MAX_UPSTREAM_EXPIRY_SECONDS,
  UPSTREAM_BACKOFF_BASE_MS,
  UPSTREAM_MAX_ATTEMPTS,
  UPSTREAM_TIMEOUT_MS,
} from "../limits";
import { log } from "../log";
import { readBytesCapped } from "../http/capped-body";

export interface RetryPolicy {
  timeoutMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  timeoutMs: UPSTREAM_TIMEOUT_MS,
  maxAttempts: UPSTREAM_MAX_ATTEMPTS,
  backoffBaseMs: UPSTREAM_BACKOFF_BASE_MS,
};

export interface UpstreamRequest {
  /** For logs and errors: "gcp-sts", "aws-sts", ... */
  service: string;
  url: string;
  method: "POST";
  headers: Record<string, string>;
  body: string;
  /** The upstream's own error code from an error body (e.g. invalid_target, AccessDenied). */
  errorCode(body: string, status: number): string;
  /** A sentence telling the CI author or admin what to check for that code. */
  hint(code: string): string;
  /** Error codes that are transient although sent with a 4xx (AWS IDPCommunicationError). */
  retryableCodes?: readonly string[];
}

/** Upstream time spent by one exchange, summed over its calls (for audit). */
export class UpstreamTimer {
  ms = 0;
}

export interface UpstreamContext {
  deps: Deps;
  retry: RetryPolicy;
  timer: UpstreamTimer;
}

/** Returns the body of a 2xx answer; throws upstream_denied / upstream_unavailable / upstream_timeout otherwise. */
export async function callUpstream(request: UpstreamRequest, ctx: UpstreamContext): Promise<string> {
  const { deps, retry, timer } = ctx;
  for (let attempt = 1; ; attempt++) {
    const started = deps.now();
    const outcome = await attemptOnce(request, deps, retry.timeoutMs);
    timer.ms += Math.max(0, deps.now() - started);

    if (outcome.kind === "timeout") {
      // Not retried: another full timeout would hold the CI job far longer than a retry on its side.
      log("warn", "upstream_timeout", { service: request.service, attempt, timeout_ms: retry.timeoutMs });
      throw new GatepassError("upstream_timeout", {
        description: `${request.service} did not answer within ${retry.timeoutMs} ms; retry later.`,
        details: { upstream_error: "timeout" },
      });
    }

    const transient = outcome.kind === "network" || isTransient(request, outcome.status, outcome.body);
    if (transient && attempt < retry.maxAttempts) {
      log("warn", "upstream_retry", { service: request.service, attempt, ...outcomeFields(outcome) });
      await sleep(Math.random() * retry.backoffBaseMs * 2 ** (attempt - 1));
      continue;
    }
    if (outcome.kind === "network") {
      log("error", "upstream_unreachable", { service: request.service, attempt, reason: outcome.reason });
      throw new GatepassError("upstream_unavailable", {
        description: `${request.service} could not be reached; retry later.`,
        details: { upstream_error: "network_error" },
      });
    }
    const { status, body } = outcome;
    if (status >= 200 && status < 300 && !outcome.truncated) return body;

    log("warn", "upstream_refused", { service: request.service, attempt, status, body: body.slice(0, 4096) });
    if (outcome.truncated) {
      throw new GatepassError("upstream_unavailable", {
        description: `${request.service} sent an oversized answer.`,
        details: { upstream_error: "response_too_large", upstream_status: status },
      });
    }
    const code = request.errorCode(body, status);
    const details = { upstream_error: code, upstream_status: status };
    if (transient) {
      throw new GatepassError("upstream_unavailable", {
        description: `${request.service} failed (${code}) after ${attempt} attempts; retry later.`,
        details,
      });
    }
    throw new GatepassError("upstream_denied", {
      description: `${request.service} refused the exchange (${code}): ${request.hint(code)}`,
      details,
    });
  }
}

/** The upstream_unavailable error (for the caller to throw) for a 2xx body gatepass cannot use; logs it. */
export function malformed(service: string, what: string): GatepassError {
  log("error", "upstream_malformed", { service, what });
  return new GatepassError("upstream_unavailable", {
    description: `${service} sent an answer gatepass cannot read (${what}).`,
    details: { upstream_error: "malformed_response" },
  });
}

/**
 * A relative expiry from an upstream (expires_in, lease_duration): a positive safe integer of at most
 * MAX_UPSTREAM_EXPIRY_SECONDS, else upstream_unavailable (malformed). Fractions, exponents beyond
 * integer precision and absurd values never reach the formatters (a huge one would overflow Date
 * after the credential was issued).
 */
export function checkedExpiresIn(service: string, field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0 || value > MAX_UPSTREAM_EXPIRY_SECONDS) {
    throw malformed(service, `${field} is not a whole number of seconds between 1 and ${MAX_UPSTREAM_EXPIRY_SECONDS}`);
  }
  return value;
}

/**
 * An absolute expiry (seconds since epoch) from an upstream: after `now`, at most MAX_UPSTREAM_EXPIRY_SECONDS later.
 */
export function checkedExpiresAt(service: string, field: string, value: number, now: number): number {
  if (!Number.isSafeInteger(value) || value <= now || value - now > MAX_UPSTREAM_EXPIRY_SECONDS) {
    throw malformed(service, `${field} is not a time within ${MAX_UPSTREAM_EXPIRY_SECONDS} s from now`);
  }
  return value;
}

type Outcome =
  | { kind: "response"; status: number; body: string; truncated: boolean }
  | { kind: "network"; reason: string }
  | { kind: "timeout" };

async function attemptOnce(request: UpstreamRequest, deps: Deps, timeoutMs: number): Promise<Outcome> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await deps.fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: "manual",
      signal: controller.signal,
    });
    const { text, truncated } = await readUpstreamBody(response, MAX_UPSTREAM_BODY_BYTES);
    return { kind: "response", status: response.status, body: text, truncated };
  } catch (err) {
    if (timedOut) return { kind: "timeout" };
    return { kind: "network", reason: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

function isTransient(request: UpstreamRequest, status: number, body: string): boolean {
  if (status === 429 || status >= 500) return true;
  if (status >= 400 && request.retryableCodes?.length)
    return request.retryableCodes.includes(request.errorCode(body, status));
  return false;
}

/**
 * Reads at most `limit` bytes, cancelling the stream beyond it (Content-Length is not trusted). Unlike
 * http/capped-body.ts's readCapped, an oversized answer is reported, not thrown, and bad UTF-8 is replaced:
 * the body is only parsed for fields and logged.
 */
async function readUpstreamBody(response: Response, limit: number): Promise<{ text: string; truncated: boolean }> {
  const bytes = await readBytesCapped(response.body, limit);
  return bytes ? { text: new TextDecoder().decode(bytes), truncated: false } : { text: "", truncated: true };
}

function outcomeFields(outcome: Outcome): Record<string, unknown> {
  if (outcome.kind === "response") return { status: outcome.status };
  if (outcome.kind === "network") return { reason: outcome.reason };
  return {};
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- small shared parsers -------------------------------------------------------------------

export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isPlainObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** An upstream error code made safe to echo: short, printable, no quotes. */
export function safeCode(value: unknown, fallback: string): string {
  if (typeof value !== "string") return fallback;
  const cleaned = value
    .replace(/[^\x20-\x7e]/g, "")
    .replace(/["\\<>]/g, "")
    .trim()
    .slice(0, 200);
  return cleaned || fallback;
}

export function formBody(fields: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) params.set(name, value);
  return params.toString();
}

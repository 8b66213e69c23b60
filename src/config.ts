// Environment bindings and vars, validated once per isolate. Secrets are read here and nowhere else.

import { GatepassError } from "./errors";
import {
  DEFAULT_AUDIT_RETENTION_DAYS,
  DEFAULT_PUSHED_KEYS_WARN_AFTER_HOURS,
  MAX_PUSHED_KEYS_WARN_AFTER_HOURS,
  TIME,
} from "./limits";
import { log } from "./log";

export interface Env {
  /** Issuer key sets, one entry per configured issuer (see docs/storage.md). */
  JWKS: KVNamespace;
  /** The active policy snapshot. */
  POLICIES: KVNamespace;
  /** Policy history, audit events, use counters. */
  DB: D1Database;
  /** Credential requests per issuer + project (optional: without it, no rate limit applies). */
  RATE_LIMITER?: RateLimit;

  /** gatepass's own public issuer URL (https, no trailing slash). */
  GATEPASS_ISSUER: string;
  /** Secret: JSON `{ "keys": [private JWK...] }` (see `gatepass keys generate`). */
  GATEPASS_SIGNING_KEYS?: string;
  /** Secret: bearer token for /v1/admin/*. Admin API is disabled when unset. */
  GATEPASS_ADMIN_TOKEN?: string;
  /**
   * "development" (local runs only, never in wrangler.toml) allows http:// issuer URLs on loopback; anything else is
   * production.
   */
  GATEPASS_ENV?: string;
  /** Upstream base URLs, overridable for tests and sovereign clouds. */
  GCP_STS_URL?: string;
  GCP_IAM_CREDENTIALS_URL?: string;
  /** May contain `{region}` and `{dns_suffix}` (amazonaws.com, or amazonaws.com.cn in China's regions). */
  AWS_STS_URL?: string;
  /** May contain `{tenant}`. */
  AZURE_TOKEN_URL?: string;
  /** Days to keep audit events. */
  AUDIT_RETENTION_DAYS?: string;
  /**
   * Hours after a pushed issuer's last push when the cron logs pushed_keys_stale (whole hours, 1 to 720; default 2).
   */
  PUSHED_KEYS_WARN_AFTER_HOURS?: string;
  /**
   * "every-request": re-read the active policy before every request (development only; `gatepass dev` sets it so a
   * saved edit is live at once).
   */
  GATEPASS_POLICY_RECHECK?: string;
}

export interface Config {
  issuerUrl: string;
  development: boolean;
  adminToken: string | undefined;
  signingKeys: string | undefined;
  upstreams: {
    gcpSts: string;
    gcpIamCredentials: string;
    awsSts: string;
    azureToken: string;
  };
  auditRetentionDays: number;
  /** Seconds after a push when the cron warns that a pushed issuer's keys are stale. */
  pushedKeysWarnAfterSeconds: number;
}

const DEFAULT_UPSTREAMS = {
  gcpSts: "https://sts.googleapis.com/v1/token",
  gcpIamCredentials: "https://iamcredentials.googleapis.com/v1",
  awsSts: "https://sts.{region}.{dns_suffix}/",
  azureToken: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
};

// The bindings object lives as long as the isolate: parse it once, not on every request.
const configs = new WeakMap<Env, Config>();

export function readConfig(env: Env): Config {
  let config = configs.get(env);
  if (!config) {
    config = parseConfig(env);
    configs.set(env, config);
  }
  return config;
}

function parseConfig(env: Env): Config {
  const development = env.GATEPASS_ENV === "development";
  const issuerUrl = (env.GATEPASS_ISSUER ?? "").replace(/\/+$/, "");
  if (!isAcceptableIssuerUrl(issuerUrl, development)) {
    // Also what a deploy of the unedited wrangler.toml meets: it names the local URL and no GATEPASS_ENV.
    throw new GatepassError("config_invalid", {
      cause: new Error(
        `GATEPASS_ISSUER is ${JSON.stringify(env.GATEPASS_ISSUER ?? "")}: set it to gatepass's public https:// URL ` +
          "(http:// is accepted only on a loopback address with GATEPASS_ENV=development, as `npm run dev` sets it)",
      ),
    });
  }
  if (new URL(issuerUrl).pathname !== "/") {
    // Relying parties fetch <issuer>/.well-known/openid-configuration, and gatepass serves it at its root.
    throw new GatepassError("config_invalid", {
      cause: new Error(
        `GATEPASS_ISSUER is ${JSON.stringify(env.GATEPASS_ISSUER)}: give gatepass's origin without a path (e.g. ` +
          `https://gatepass.example.com); ` +
          "clouds read its discovery document at <issuer>/.well-known/openid-configuration, which gatepass serves " +
          "at the root of its own hostname",
      ),
    });
  }
  checkPolicyRecheck(env.GATEPASS_POLICY_RECHECK, development);
  const retention = Number.parseInt(env.AUDIT_RETENTION_DAYS ?? "", 10);
  const warnAfterHours = parseWarnAfterHours(env.PUSHED_KEYS_WARN_AFTER_HOURS);
  const upstream = (name: UpstreamVar, fallback: string) => checkedUpstream(name, env[name], development) ?? fallback;
  return {
    issuerUrl,
    development,
    adminToken: env.GATEPASS_ADMIN_TOKEN || undefined,
    signingKeys: env.GATEPASS_SIGNING_KEYS || undefined,
    upstreams: {
      gcpSts: upstream("GCP_STS_URL", DEFAULT_UPSTREAMS.gcpSts),
      gcpIamCredentials: upstream("GCP_IAM_CREDENTIALS_URL", DEFAULT_UPSTREAMS.gcpIamCredentials).replace(/\/+$/, ""),
      awsSts: upstream("AWS_STS_URL", DEFAULT_UPSTREAMS.awsSts),
      azureToken: upstream("AZURE_TOKEN_URL", DEFAULT_UPSTREAMS.azureToken),
    },
    auditRetentionDays: Number.isFinite(retention) && retention > 0 ? retention : DEFAULT_AUDIT_RETENTION_DAYS,
    pushedKeysWarnAfterSeconds: warnAfterHours * TIME.HOUR,
  };
}

/**
 * Unset: the default. Anything but a whole number of hours in range is refused, not guessed at: a typo must not
 * silence the warning.
 */
function parseWarnAfterHours(value: string | undefined): number {
  if (value === undefined || value === "") return DEFAULT_PUSHED_KEYS_WARN_AFTER_HOURS;
  const hours = /^[0-9]{1,4}$/.test(value) ? Number(value) : Number.NaN;
  if (hours >= 1 && hours <= MAX_PUSHED_KEYS_WARN_AFTER_HOURS) return hours;
  throw new GatepassError("config_invalid", {
    cause: new Error(
      `PUSHED_KEYS_WARN_AFTER_HOURS is ${JSON.stringify(value)}: give a whole number of hours from 1 to ` +
        `${MAX_PUSHED_KEYS_WARN_AFTER_HOURS} (or leave it unset for ${DEFAULT_PUSHED_KEYS_WARN_AFTER_HOURS})`,
    ),
  });
}

/**
 * Whether the Worker re-reads the active policy before every request instead of every
 * POLICY_RECHECK_MS: only with GATEPASS_POLICY_RECHECK=every-request in development, which
 * readConfig enforces (a production Worker with it set refuses every request).
 */
export function policyRecheckEveryRequest(env: Pick<Env, "GATEPASS_ENV" | "GATEPASS_POLICY_RECHECK">): boolean {
  return env.GATEPASS_ENV === "development" && env.GATEPASS_POLICY_RECHECK === "every-request";
}

/** A typo or a production Worker with the development setting is refused, not ignored (fail closed). */
function checkPolicyRecheck(value: string | undefined, development: boolean): void {
  if (value === undefined || value === "") return;
  if (value !== "every-request") {
    throw new GatepassError("config_invalid", {
      cause: new Error(
        `GATEPASS_POLICY_RECHECK is ${JSON.stringify(value)}: the only value is "every-request" (development only), ` +
          `or leave it unset`,
      ),
    });
  }
  if (!development) {
    throw new GatepassError("config_invalid", {
      cause: new Error(
        "GATEPASS_POLICY_RECHECK is set on a production Worker: it is for local development only (`gatepass dev` " +
          "sets it); remove it",
      ),
    });
  }
}

/** The upstream overrides (docs/upstreams.md). */
export const UPSTREAM_VARS = ["GCP_STS_URL", "GCP_IAM_CREDENTIALS_URL", "AWS_STS_URL", "AZURE_TOKEN_URL"] as const;
type UpstreamVar = (typeof UPSTREAM_VARS)[number];

/**
 * What the URL templates' placeholders stand for when an override is checked (real values are filled in per request).
 */
const PLACEHOLDER_SAMPLES: Record<string, string> = {
  "{region}": "us-east-1",
  "{dns_suffix}": "amazonaws.com",
  "{tenant}": "tenant",
};

/**
 * An override, or undefined when unset. Upstreams receive gatepass's minted tokens and answer with
 * cloud credentials, so they follow the issuer's rule: https, or http on loopback in development only
 * (a stand-in or moto on this machine). Anything else refuses the whole configuration.
 */
function checkedUpstream(name: UpstreamVar, value: string | undefined, development: boolean): string | undefined {
  if (!value) return undefined;
  const sample = value.replace(
    /\{region\}|\{dns_suffix\}|\{tenant\}/g,
    (placeholder) => PLACEHOLDER_SAMPLES[placeholder]!,
  );
  if (!isAcceptableIssuerUrl(sample, development)) {
    throw new GatepassError("config_invalid", {
      cause: new Error(
        `${name} is ${JSON.stringify(value)}: give an https:// URL without query, fragment or credentials ` +
          "(http:// is accepted only on a loopback address with GATEPASS_ENV=development); see docs/upstreams.md",
      ),
    });
  }
  return value;
}

/** Logs why the configuration was refused: a config_invalid answer only tells the caller to look here. */
export function logConfigRefusal(error: GatepassError, fields: Record<string, unknown> = {}): void {
  log("error", "config_invalid", {
    ...fields,
    reason: error.cause instanceof Error ? error.cause.message : String(error.cause),
  });
}

/** https anywhere; http only for loopback hosts and only in development. */
export function isAcceptableIssuerUrl(value: string, development: boolean): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.search || url.hash || url.username || url.password) return false;
  if (url.protocol === "https:") return true;
  return development && url.protocol === "http:" && isLoopbackHost(url.hostname);
}

export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

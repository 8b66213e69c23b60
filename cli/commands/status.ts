// `gatepass status`: a running gatepass's GET /v1/admin/status, read over HTTP with the admin token,
// for people: policy version, each issuer's keys (for pushed issuers: last push, by whom, age),
// signing keys and recent errors. The token comes from GATEPASS_ADMIN_TOKEN or a file, never from
// the command line (argv is visible to every user of the machine and lands in shell history).

import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { isAcceptableIssuerUrl } from "../../src/config";
import { isPlainObject } from "../../src/encoding";
import { escapeControl } from "../../src/policy/shape-spec";
import { USAGE } from "../help";
import { UsageError } from "../usage-error";

export const usage = USAGE.status;

const STATUS_TIMEOUT_MS = 10_000;
const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { url: { type: "string" }, "token-file": { type: "string" }, json: { type: "boolean" } },
  });
  const base = (values.url ?? process.env.GATEPASS_URL ?? "").replace(/\/+$/, "");
  if (!base) throw new UsageError("give --url URL (or set GATEPASS_URL): the gatepass to ask");
  // The admin token must not cross the network in clear text.
  if (!isAcceptableIssuerUrl(base, true))
    throw new UsageError(`--url must be an https URL (http only on loopback), got '${base}'`);
  const token = await adminToken(values["token-file"]);

  let response: Response;
  try {
    // Redirects are not followed: the token would go along to wherever they point.
    response = await fetch(`${base}/v1/admin/status`, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
    });
  } catch (error) {
    err(`gatepass status: ${base} did not answer: ${(error as Error).message}`);
    return 1;
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (response.status !== 200 || !isPlainObject(body)) {
    const refusal =
      isPlainObject(body) && typeof body.code === "string"
        ? `${str(body.code)}: ${str(body.error_description)}`
        : `a ${text.length}-byte answer that is not gatepass's JSON`;
    err(`gatepass status: ${base} answered HTTP ${response.status}, ${refusal}`);
    return 1;
  }
  if (values.json) {
    out(JSON.stringify(body, null, 2));
    return 0;
  }
  for (const line of describeStatus(body, base)) out(line);
  for (const warning of statusWarnings(body)) err(`warning: ${warning}`);
  return 0;
}

async function adminToken(file: string | undefined): Promise<string> {
  let token: string;
  if (file !== undefined) {
    token = await readFile(file, "utf8").catch(() => {
      throw new UsageError(`cannot read --token-file '${file}'`);
    });
  } else {
    token = process.env.GATEPASS_ADMIN_TOKEN ?? "";
  }
  token = token.trim();
  if (!token)
    throw new UsageError(
      "give the admin token in GATEPASS_ADMIN_TOKEN or a file named by --token-file (never on the command line)",
    );
  if (/\s/.test(token)) throw new UsageError("the admin token contains whitespace; the file must hold the token alone");
  return token;
}

type Json = Record<string, unknown>;
const list = (value: unknown): Json[] => (Array.isArray(value) ? value.filter(isPlainObject) : []);
/** Text from the answer, printed with control characters escaped (a terminal escape must not act). */
const str = (value: unknown): string => escapeControl(String(value));
const names = (value: unknown): string =>
  Array.isArray(value) && value.length > 0 ? value.map(str).join(", ") : "none";

/** The status for a person: one line per fact, issuers indented. */
export function describeStatus(body: Json, base: string): string[] {
  const lines = [`gatepass ${base}`];
  const policy = isPlainObject(body.policy) ? body.policy : {};
  lines.push(
    typeof policy.version === "string"
      ? `policy      ${policy.version.slice(0, 12)} (created ` +
          `${str(policy.created_at)})${policy.last_error ? `; last error: ${str(policy.last_error)}` : ""}`
      : `policy      none loaded${policy.last_error ? `: ${str(policy.last_error)}` : ""}`,
  );
  lines.push("issuers");
  for (const issuer of list(body.issuers)) {
    const age = typeof issuer.age_seconds === "number" ? `${formatAge(issuer.age_seconds)} ago` : "never";
    let line = `  ${str(issuer.name)}  ${str(issuer.source)}`;
    if (issuer.source === "pushed") {
      line += `  last push ${age}${typeof issuer.fetched_at === "number" ? ` (${iso(issuer.fetched_at)})` : ""}`;
      if (issuer.pushed_by) line += ` by ${str(issuer.pushed_by)}`;
      if (issuer.stale === true) line += "  STALE";
    } else {
      line += `  fetched ${age}`;
    }
    line += `  kids: ${names(issuer.kids)}`;
    const retired = list(issuer.retired);
    if (retired.length > 0)
      line +=
        `  retiring: ` +
        `${retired.map((r) => `${str(r.kid)} until ${typeof r.until === "number" ? iso(r.until) : "?"}`).join(", ")}`;
    if (issuer.last_error) line += `  last error: ${str(issuer.last_error)}`;
    lines.push(line);
  }
  const signing = isPlainObject(body.signing_keys) ? body.signing_keys : {};
  if (typeof signing.error === "string") lines.push(`signing     unavailable: ${signing.error}`);
  else
    lines.push(
      `signing     ${
        list(signing.keys)
          .map((k) => `${str(k.alg)} ${str(k.status)} ${str(k.kid).slice(0, 12)}`)
          .join(", ") || "no keys"
      }`,
    );
  const errors = isPlainObject(body.errors_last_hour) ? Object.entries(body.errors_last_hour) : [];
  lines.push(
    `errors (1h) ` +
      `${errors.length > 0 ? errors.map(([code, n]) => `${code} ${str(n)}`).join(", ") : body.errors_last_hour === null ? "unknown (D1 unavailable)" : "none"}`,
  );
  return lines;
}

/** What needs an operator's attention, one sentence each. */
export function statusWarnings(body: Json): string[] {
  const warnings: string[] = [];
  const policy = isPlainObject(body.policy) ? body.policy : {};
  if (typeof policy.version !== "string")
    warnings.push("no policy is loaded: every request is refused (gatepass policies push)");
  for (const issuer of list(body.issuers)) {
    if (issuer.source === "pushed" && issuer.stale === true) {
      warnings.push(
        typeof issuer.age_seconds === "number"
          ? `issuer ${str(issuer.name)}: keys last pushed ${formatAge(issuer.age_seconds)} ago; check the key push ` +
              `job (templates/jwks-push.gitlab-ci.yml) and its credential`
          : `issuer ${str(issuer.name)}: no keys were ever pushed; its tokens fail until the key push job runs`,
      );
    }
  }
  const signing = isPlainObject(body.signing_keys) ? body.signing_keys : {};
  if (Array.isArray(signing.targets_without_key) && signing.targets_without_key.length > 0) {
    warnings.push(
      `targets without a signing key (they answer signing_unavailable): ${names(signing.targets_without_key)}`,
    );
  }
  return warnings;
}

export function formatAge(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, "Z");
}

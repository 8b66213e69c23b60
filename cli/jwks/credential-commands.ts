// `gatepass jwks credential create|list|revoke`: issuer-scoped push credentials in D1
// `push_credentials`, through `wrangler d1 execute` (local or remote), like every storage command.
// The credential is printed once on stdout (nothing else goes there) and only its SHA-256 is stored.

import { parseArgs } from "node:util";
import { newPushCredential, PUSH_CREDENTIAL_ID } from "../../src/admin/push-credentials";
import {
  MAX_LISTED_PUSH_CREDENTIALS,
  PUSH_CREDENTIAL_DEFAULT_LIFETIME_SECONDS,
  PUSH_CREDENTIAL_MAX_LIFETIME_SECONDS,
  PUSH_CREDENTIAL_MIN_LIFETIME_SECONDS,
} from "../../src/limits";
import { loadSnapshot } from "../../src/policy/load-snapshot";
import { DURATION } from "../../src/policy/shape-spec";
import type { IssuerConfig } from "../../src/types";
import { whoAmI } from "../commands/policies";
import { PolicyStorage, sqlString } from "../policy/policy-storage";
import { USAGE } from "../help";
import { UsageError } from "../usage-error";
import { withStorage, type StorageTarget } from "../remote-d1";
import { STORAGE_OPTIONS, storageTarget, wrangler } from "../wrangler";

export const usage = USAGE.jwksCredential;

const err = (text: string) => process.stderr.write(`${text}\n`);
const out = (text: string) => process.stdout.write(`${text}\n`);
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

export async function run(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === "create") return create(rest);
  if (command === "list") return list(rest);
  if (command === "revoke") return revoke(rest);
  err(`usage:\n${usage}`);
  return 2;
}

/** `--expires`: a duration (90d, 12h, ...) between the minimum and maximum lifetime. */
export function parseExpires(value: string): number {
  const match = DURATION.exec(value);
  const seconds = match ? Number(match[1]) * UNITS[match[2]!]! : Number.NaN;
  if (!(seconds >= PUSH_CREDENTIAL_MIN_LIFETIME_SECONDS && seconds <= PUSH_CREDENTIAL_MAX_LIFETIME_SECONDS)) {
    throw new UsageError(`--expires takes a duration from 1h to 365d (e.g. 90d or 12h), got '${value}'`);
  }
  return seconds;
}

async function create(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { issuer: { type: "string" }, expires: { type: "string" }, by: { type: "string" }, ...STORAGE_OPTIONS },
  });
  if (!values.issuer) throw new UsageError("give --issuer NAME: the issuer this credential may push keys for");
  const lifetime =
    values.expires === undefined ? PUSH_CREDENTIAL_DEFAULT_LIFETIME_SECONDS : parseExpires(values.expires);
  const by = (values.by ?? whoAmI()).slice(0, 200);
  return withStorage(storageTarget(values), (target) => createFor(target, values.issuer!, lifetime, by));
}

async function createFor(target: StorageTarget, issuer: string, lifetime: number, by: string): Promise<number> {
  // Named after an issuer the live policy has with pushed keys: a typo would only surface at the first push.
  // Bound to its URL there too: gatepass refuses the credential once the name points elsewhere.
  const live = await liveIssuer(target, issuer);
  if (typeof live === "string") {
    err(`gatepass jwks credential: ${live} No credential was created.`);
    return 1;
  }

  const now = Math.floor(Date.now() / 1000);
  const created = await newPushCredential();
  await query(
    target,
    "INSERT INTO push_credentials (id, issuer, issuer_url, secret_sha256, created_by, created_at, expires_at) " +
      `VALUES (${sqlString(created.id)}, ${sqlString(issuer)}, ${sqlString(live.url)}, ${sqlString(created.secretSha256)}, ${sqlString(by)}, ${now}, ${now + lifetime})`,
  );
  out(created.credential);
  err(
    `created push credential ${created.id} for issuer ` +
      `${issuer} at ${live.url} (${target.remote ? "remote" : "local"}), expires ${iso(now + lifetime)}.\n` +
      "It is shown this once: store it as a masked CI/CD variable (GATEPASS_PUSH_CREDENTIAL in " +
      "templates/jwks-push.gitlab-ci.yml).",
  );
  return 0;
}

interface CredentialRow {
  id: string;
  issuer: string;
  issuer_url: string | null;
  created_by: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
  last_used_at: number | null;
}

async function list(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { issuer: { type: "string" }, json: { type: "boolean" }, ...STORAGE_OPTIONS },
  });
  const where = values.issuer === undefined ? "" : ` WHERE issuer = ${sqlString(values.issuer)}`;
  const sql =
    `SELECT id, issuer, issuer_url, created_by, created_at, expires_at, revoked_at, revoked_by, ` +
    `last_used_at FROM push_credentials${where} ORDER BY issuer, created_at, id LIMIT ${MAX_LISTED_PUSH_CREDENTIALS}`;
  const rows = await withStorage(storageTarget(values), (target) => query<CredentialRow>(target, sql));
  const now = Math.floor(Date.now() / 1000);
  const state = (row: CredentialRow) =>
    row.revoked_at !== null ? "revoked" : now >= row.expires_at ? "expired" : "active";
  if (values.json) {
    for (const row of rows) out(JSON.stringify({ ...row, state: state(row) }));
    return 0;
  }
  if (rows.length === 0) {
    err("no push credentials");
    return 0;
  }
  const table = [
    ["ID", "ISSUER", "STATE", "CREATED", "BY", "EXPIRES", "LAST USED"],
    ...rows.map((row) => [
      row.id,
      row.issuer,
      state(row),
      iso(row.created_at),
      row.created_by,
      iso(row.expires_at),
      row.last_used_at === null ? "never" : iso(row.last_used_at),
    ]),
  ];
  const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
  for (const line of table)
    out(
      line
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join("  ")
        .trimEnd(),
    );
  return 0;
}

async function revoke(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { by: { type: "string" }, ...STORAGE_OPTIONS },
  });
  const [id, ...extra] = positionals;
  if (id === undefined || extra.length > 0)
    throw new UsageError("give exactly one credential id (gpk_ and 16 hex digits, as `credential list` shows it)");
  if (!PUSH_CREDENTIAL_ID.test(id)) {
    // Not echoed: it may be a whole credential pasted by mistake.
    throw new UsageError(
      "that is not a credential id: give gpk_ and 16 hex digits, as `credential list` shows it (never the whole " +
        "credential)",
    );
  }
  const target = storageTarget(values);
  const now = Math.floor(Date.now() / 1000);
  const by = (values.by ?? whoAmI()).slice(0, 200);
  // One statement: an earlier revocation keeps its time and author.
  const sql =
    `UPDATE push_credentials SET revoked_at = COALESCE(revoked_at, ${now}), revoked_by = ` +
    `COALESCE(revoked_by, ${sqlString(by)}) WHERE id = ${sqlString(id)} RETURNING issuer, revoked_at, revoked_by`;
  const [row] = await withStorage(target, (storage) =>
    query<{ issuer: string; revoked_at: number; revoked_by: string }>(storage, sql),
  );
  if (!row) {
    err(
      `gatepass jwks credential: no push credential ${id} (${target.remote ? "remote" : "local"}); see gatepass ` +
        `jwks credential list`,
    );
    return 1;
  }
  // Another revocation in the same second by someone else is an earlier one, not this one.
  const revokedNow = row.revoked_at === now && row.revoked_by === by;
  out(
    revokedNow
      ? `revoked ${id} (issuer ${row.issuer}): refused from now on`
      : `${id} (issuer ${row.issuer}) was already revoked at ${iso(row.revoked_at)}`,
  );
  return 0;
}

/**
 * The live policy's issuer of that name when it has pushed keys there; otherwise why no credential should be made for
 * it.
 */
async function liveIssuer(target: StorageTarget, name: string): Promise<IssuerConfig | string> {
  const text = await new PolicyStorage(target).readActive();
  if (text === undefined) return "no policy is live yet: push the policies first (gatepass policies push).";
  let issuers;
  try {
    issuers = (await loadSnapshot(text)).issuers;
  } catch (error) {
    return `the live policy cannot be read (${(error as Error).message}); push the policies first.`;
  }
  const issuer = issuers.find((candidate) => candidate.name === name);
  if (!issuer)
    return `the live policy has no issuer '${name}' (it has: ${issuers.map((i) => i.name).join(", ") || "none"}).`;
  if (issuer.keys.source !== "pushed")
    return (
      `issuer '${name}' gets its keys by ${issuer.keys.source}; only issuers with keys: { source: pushed } ` +
      `take pushed keys.`
    );
  return issuer;
}

async function query<T>(target: StorageTarget, sql: string): Promise<T[]> {
  const stdout = await wrangler(["d1", "execute", "DB", "--json", "--command", sql, ...(await target.d1Flags())]);
  return (JSON.parse(stdout) as { results?: T[] }[]).flatMap((result) => result.results ?? []);
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, "Z");
}

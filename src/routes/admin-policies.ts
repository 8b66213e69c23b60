// Admin routes a remote `policies plan` and `history` read, open to the admin token or a CI ID token
// granted gatepass:policies-plan (src/admin/capability-routes.ts; the authentication runs in admin.ts):
//   GET /v1/admin/policies/active             the active version's snapshot text (format 1 JSON)
//   GET /v1/admin/policies/versions/:version  a pushed version's snapshot text
//   GET /v1/admin/policies/history?limit=N    pushed versions, newest first
//   GET /v1/admin/seen-identities?since=&after=&limit=   identities gatepass has seen, a page at a time

import { Hono, type Context } from "hono";
import type { AppEnv } from "../app";
import { activeVersion, policyHistory, seenIdentitiesPage, versionText } from "../admin/policy-reads";
import { GatepassError } from "../errors";

const NO_STORE = { "Cache-Control": "no-store" };
const VERSION = /^[0-9a-f]{64}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MAX_HISTORY = 100;
/** Rows per seen-identities page: the CLI's own page size, a few MB of JSON at most. */
export const MAX_SEEN_PAGE = 5000;

export const adminPolicyRoutes = new Hono<AppEnv>();

adminPolicyRoutes.get("/v1/admin/policies/active", async (c) => {
  const version = await activeVersion(c.env);
  if (version === undefined) throw new GatepassError("policy_version_unknown", { description: "No policy version is active yet: push policies first." });
  return snapshotResponse(c, version);
});

adminPolicyRoutes.get("/v1/admin/policies/versions/:version", async (c) => {
  const version = c.req.param("version");
  if (!VERSION.test(version)) throw new GatepassError("request_invalid", { description: "A version is the 64 hexadecimal digits GET /v1/admin/policies/history lists." });
  return snapshotResponse(c, version);
});

adminPolicyRoutes.get("/v1/admin/policies/history", async (c) => {
  const { limit } = queryOf(c, ["limit"]);
  const versions = await policyHistory(c.env, boundedInt(limit, "limit", 20, MAX_HISTORY));
  return c.json({ versions: versions.map((v) => ({ ...v, active: v.active === 1 })) }, 200, NO_STORE);
});

adminPolicyRoutes.get("/v1/admin/seen-identities", async (c) => {
  const query = queryOf(c, ["since", "after", "limit"]);
  const since = query.since ?? "";
  if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+Z)?$/.test(since) || Number.isNaN(Date.parse(since))) {
    throw new GatepassError("request_invalid", { description: "since is required: an ISO 8601 UTC date or time (e.g. 2026-11-01 or 2026-11-01T00:00:00Z)." });
  }
  const after = query.after ?? "";
  if (after !== "" && !SHA256.test(after)) throw new GatepassError("request_invalid", { description: "after is the next value of the previous page." });
  const limit = boundedInt(query.limit, "limit", MAX_SEEN_PAGE, MAX_SEEN_PAGE);
  const rows = await seenIdentitiesPage(c.env, since, after, limit);
  const identities = rows.map((row) => ({ ...row, claims: JSON.parse(row.claims) as unknown }));
  return c.json({ identities, next: rows.length === limit ? rows.at(-1)!.claims_sha256 : null }, 200, NO_STORE);
});

async function snapshotResponse(c: Context<AppEnv>, version: string): Promise<Response> {
  const text = await versionText(c.env, version);
  if (text === undefined) throw new GatepassError("policy_version_unknown");
  return c.body(text, 200, { ...NO_STORE, "Content-Type": "application/json", "Gatepass-Policy-Version": version });
}

/** The query's parameters, each at most once; anything else is refused (no silent typo). */
function queryOf<K extends string>(c: Context<AppEnv>, allowed: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [name, values] of Object.entries(c.req.queries())) {
    if (!(allowed as readonly string[]).includes(name)) throw new GatepassError("request_invalid", { description: `An unknown parameter was given; this endpoint takes ${allowed.join(", ")}.` });
    if (values.length !== 1) throw new GatepassError("request_invalid", { description: `${name} is given more than once.` });
    out[name as K] = values[0]!;
  }
  return out;
}

function boundedInt(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,6}$/.test(value) || Number(value) < 1 || Number(value) > max) throw new GatepassError("request_invalid", { description: `${name} is a whole number from 1 to ${max}.` });
  return Number(value);
}

// Admin routes a remote `policies plan` and `history` read, open to the admin token or a CI ID token
// granted gatepass:policies-plan (src/admin/capability-routes.ts; the authentication runs in admin.ts):
//   GET /v1/admin/policies/active             the active version's snapshot text (format 1 JSON)
//   GET /v1/admin/policies/versions/:version  a pushed version's snapshot text
//   GET /v1/admin/policies/history?limit=N    pushed versions, newest first
//   GET /v1/admin/seen-identities?since=&after=&limit=   identities gatepass has seen, a page at a time
// and, for a CI ID token granted gatepass:policies-push (src/admin/policy-push.ts):
//   PUT  /v1/admin/policies            { snapshot, tests, force, wait }: validate, test, write
//   POST /v1/admin/policies/rollback   { version, force, wait }

import { Hono, type Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { activeVersion, policyHistory, seenIdentitiesPage, versionText } from "../admin/policy-reads";
import {
  MAX_PUSH_BODY_BYTES,
  MAX_PUSH_WAIT_SECONDS,
  pushPolicy,
  readPushRequest,
  rollbackPolicy,
  type WriteContext,
} from "../admin/policy-push";
import { GatepassError } from "../errors";
import { BodyTooLargeError, readCapped } from "../http/capped-body";
import { auditDraft } from "../http/request-context";
import { loadSnapshot } from "../policy/load-snapshot";

const NO_STORE = { "Cache-Control": "no-store" };
const VERSION = /^[0-9a-f]{64}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MAX_HISTORY = 100;
/** Rows per seen-identities page: the CLI's own page size, a few MB of JSON at most. */
export const MAX_SEEN_PAGE = 5000;

export const adminPolicyRoutes = new Hono<AppEnv>();

adminPolicyRoutes.get("/v1/admin/policies/active", async (c) => {
  const version = await activeVersion(c.env);
  if (version === undefined)
    throw new GatepassError("policy_version_unknown", {
      description: "No policy version is active yet: push policies first.",
    });
  return snapshotResponse(c, version);
});

adminPolicyRoutes.get("/v1/admin/policies/versions/:version", async (c) => {
  const version = c.req.param("version");
  if (!VERSION.test(version))
    throw new GatepassError("request_invalid", {
      description: "A version is the 64 hexadecimal digits GET /v1/admin/policies/history lists.",
    });
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
    throw new GatepassError("request_invalid", {
      description: "since is required: an ISO 8601 UTC date or time (e.g. 2026-11-01 or 2026-11-01T00:00:00Z).",
    });
  }
  const after = query.after ?? "";
  if (after !== "" && !SHA256.test(after))
    throw new GatepassError("request_invalid", { description: "after is the next value of the previous page." });
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
    if (!(allowed as readonly string[]).includes(name))
      throw new GatepassError("request_invalid", {
        description: `An unknown parameter was given; this endpoint takes ${allowed.join(", ")}.`,
      });
    if (values.length !== 1)
      throw new GatepassError("request_invalid", { description: `${name} is given more than once.` });
    out[name as K] = values[0]!;
  }
  return out;
}

function boundedInt(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,6}$/.test(value) || Number(value) < 1 || Number(value) > max)
    throw new GatepassError("request_invalid", { description: `${name} is a whole number from 1 to ${max}.` });
  return Number(value);
}

adminPolicyRoutes.put("/v1/admin/policies", async (c) => {
  const request = readPushRequest(await readJson(c.req.raw));
  const pushed = await pushPolicy(await writeContext(c), request);
  return c.json(
    { version: pushed.version, replaced: pushed.replaced ?? null, pushed_by: auditDraft(c).actor },
    200,
    NO_STORE,
  );
});

adminPolicyRoutes.post("/v1/admin/policies/rollback", async (c) => {
  const body = await readJson(c.req.raw);
  const fields = (typeof body === "object" && body !== null && !Array.isArray(body) ? body : {}) as Record<
    string,
    unknown
  >;
  if (
    Object.keys(fields).some((key) => !["version", "force", "wait"].includes(key)) ||
    typeof fields.version !== "string" ||
    !VERSION.test(fields.version)
  ) {
    throw new GatepassError("request_invalid", {
      description: "The body is { version (all 64 hexadecimal digits), force, wait }.",
    });
  }
  const wait = fields.wait ?? 30;
  if (!Number.isInteger(wait) || (wait as number) < 0 || (wait as number) > MAX_PUSH_WAIT_SECONDS)
    throw new GatepassError("request_invalid", {
      description: `wait is a whole number of seconds from 0 to ${MAX_PUSH_WAIT_SECONDS}.`,
    });
  const text = await versionText(c.env, fields.version);
  if (text === undefined) throw new GatepassError("policy_version_unknown");
  const rolled = await rollbackPolicy(await writeContext(c), text, fields.version, {
    force: fields.force === true,
    wait: wait as number,
  });
  return c.json(
    { version: rolled.version, replaced: rolled.replaced ?? null, pushed_by: auditDraft(c).actor },
    200,
    NO_STORE,
  );
});

/** Who writes (the authenticated actor) and the version D1 flags active now (the lockout guard's reference). */
async function writeContext(c: Context<AppEnv>): Promise<WriteContext> {
  const version = await activeVersion(c.env);
  const text = version === undefined ? undefined : await versionText(c.env, version);
  // A stored active version that no longer loads guards nothing: the push is how it gets replaced.
  const active = text === undefined ? undefined : await loadSnapshot(text).catch(() => undefined);
  return { env: c.env, deps: c.get("services").deps, by: auditDraft(c).actor ?? "unknown", active };
}

async function readJson(request: Request): Promise<unknown> {
  let text: string;
  try {
    text = await readCapped(request, MAX_PUSH_BODY_BYTES);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new GatepassError("request_too_large");
    throw new GatepassError("request_invalid", { description: "The request body is not UTF-8 text." });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new GatepassError("request_invalid", { description: "The request body is not JSON." });
  }
}

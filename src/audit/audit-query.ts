// Reading audit events back for operators: filtered, parameterised SQL only; newest first, or (to
// follow the log) page by page in id order. Summary rows of folded refusals (folded_count set) come
// back among the events, in the order they were written.

import type { Env } from "../config";
import { GatepassError } from "../errors";
import { DEFAULT_AUDIT_QUERY_ROWS, MAX_AUDIT_FILTER_LENGTH, MAX_AUDIT_QUERY_ROWS } from "../limits";
import type { AuditEvent } from "./audit-event";

export interface AuditFilter {
  project?: string;
  target?: string;
  /** The verified issuer (by configured name). */
  issuer?: string;
  /** The issuer a refused token or an unauthenticated caller claimed (unverified; see audit-event.ts). */
  claimed_issuer?: string;
  decision?: string;
  /** ISO 8601 time; only events at or after it. */
  since?: string;
  limit?: number;
}

const DECISIONS = new Set(["allow", "deny", "error"]);

/** Validates query-string filters; refuses rather than ignores what it does not understand. */
export function parseAuditFilter(query: Record<string, string | undefined>): AuditFilter {
  const known = new Set(["project", "target", "issuer", "claimed_issuer", "decision", "since", "limit"]);
  const unknown = Object.keys(query).filter((key) => !known.has(key));
  const invalid = (description: string) => new GatepassError("request_invalid", { description });
  if (unknown.length > 0)
    throw invalid(
      `Unknown filter ${unknown.join(", ")}; use project, target, issuer, claimed_issuer, decision, since, limit.`,
    );
  const filter: AuditFilter = {};
  for (const key of ["project", "target", "issuer", "claimed_issuer"] as const) {
    const value = query[key];
    if (value !== undefined) {
      if (value.length === 0 || value.length > MAX_AUDIT_FILTER_LENGTH)
        throw invalid(`${key} must be 1 to ${MAX_AUDIT_FILTER_LENGTH} characters.`);
      filter[key] = value;
    }
  }
  if (query.decision !== undefined) {
    if (!DECISIONS.has(query.decision)) throw invalid("decision must be allow, deny or error.");
    filter.decision = query.decision;
  }
  if (query.since !== undefined) {
    const time = Date.parse(query.since);
    if (!Number.isFinite(time)) throw invalid("since must be an ISO 8601 time, e.g. 2026-01-31T00:00:00Z.");
    filter.since = new Date(time).toISOString();
  }
  if (query.limit !== undefined) {
    const limit = Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_QUERY_ROWS)
      throw invalid(`limit must be 1 to ${MAX_AUDIT_QUERY_ROWS}.`);
    filter.limit = limit;
  }
  return filter;
}

/** The newest events matching a filter, newest first (shared by the admin endpoint and `gatepass audit query`). */
export function auditQuerySql(filter: AuditFilter): { sql: string; params: (string | number)[] } {
  const { where, params } = auditWhere(filter);
  return {
    sql: `SELECT * FROM audit_events${where} ORDER BY id DESC LIMIT ?`,
    params: [...params, filter.limit ?? DEFAULT_AUDIT_QUERY_ROWS],
  };
}

/**
 * The next page of matching events after an id, oldest first (`gatepass audit tail`). Call again with
 * the page's last id until a page is shorter than pageSize: every event is returned exactly once and in
 * order, however many arrived since the previous call (a newest-first page would skip the oldest).
 */
export function auditPageAfterSql(
  filter: AuditFilter,
  afterId: number,
  pageSize: number,
): { sql: string; params: (string | number)[] } {
  const { where, params } = auditWhere(filter, afterId);
  return { sql: `SELECT * FROM audit_events${where} ORDER BY id ASC LIMIT ?`, params: [...params, pageSize] };
}

function auditWhere(filter: AuditFilter, afterId?: number): { where: string; params: (string | number)[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  const add = (clause: string, ...values: (string | number)[]) => {
    where.push(clause);
    params.push(...values);
  };
  // A project is named by path or by id.
  if (filter.project) add("(project_path = ? OR project_id = ?)", filter.project, filter.project);
  if (filter.target) add("target = ?", filter.target);
  if (filter.issuer) add("issuer = ?", filter.issuer);
  if (filter.claimed_issuer) add("claimed_issuer = ?", filter.claimed_issuer);
  if (filter.decision) add("decision = ?", filter.decision);
  if (filter.since) add("ts >= ?", filter.since);
  if (afterId !== undefined) add("id > ?", afterId);
  return { where: where.length ? ` WHERE ${where.join(" AND ")}` : "", params };
}

export async function queryAuditEvents(env: Env, filter: AuditFilter): Promise<AuditEvent[]> {
  const { sql, params } = auditQuerySql(filter);
  const { results } = await env.DB.prepare(sql)
    .bind(...params)
    .all<AuditEvent & { id: number }>();
  return results.map(({ id: _id, ...event }) => event);
}

/**
 * Error counts by code since a time, across all isolates (from the audit log; a summary row counts its folded
 * refusals).
 */
export async function recentErrorCounts(env: Env, since: string): Promise<Record<string, number>> {
  const { results } = await env.DB.prepare(
    "SELECT error_code, sum(coalesce(folded_count, 1)) AS n FROM audit_events WHERE ts >= ? AND error_code IS NOT " +
      "NULL GROUP BY error_code ORDER BY n DESC",
  )
    .bind(since)
    .all<{ error_code: string; n: number }>();
  return Object.fromEntries(results.map((row) => [row.error_code, row.n]));
}

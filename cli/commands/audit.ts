// `gatepass audit query|tail`: read audit events from D1 through wrangler (local or remote).
// Filters are validated by the same code as GET /v1/admin/audit; values are SQL-quoted, never spliced raw.

import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { auditPageAfterSql, auditQuerySql, parseAuditFilter } from "../../src/audit/audit-query";
import { isGatepassError } from "../../src/errors";
import { MAX_AUDIT_QUERY_ROWS } from "../../src/limits";
import { sqlString } from "../policy/policy-storage";
import { USAGE } from "../help";
import { UsageError } from "../usage-error";
import { withStorage, type StorageTarget } from "../remote-d1";
import { STORAGE_OPTIONS, storageTarget, wrangler } from "../wrangler";

export const usage = USAGE.audit;

const TAIL_INTERVAL_MS = 2_000;
/** Rows per poll query; a full page is followed at once by the next (see auditPageAfterSql). */
const TAIL_PAGE_ROWS = MAX_AUDIT_QUERY_ROWS;

export async function run(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command !== "query" && command !== "tail") {
    process.stderr.write(`usage:\n${usage}\n`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      project: { type: "string" },
      target: { type: "string" },
      issuer: { type: "string" },
      "claimed-issuer": { type: "string" },
      decision: { type: "string" },
      since: { type: "string" },
      limit: { type: "string" },
      ...STORAGE_OPTIONS,
    },
  });
  const { local, remote, env, "persist-to": persistTo, config, "claimed-issuer": claimedIssuer, ...filters } = values;
  const target = storageTarget({ local, remote, env, "persist-to": persistTo, config });
  const filter = filterOf({ ...filters, claimed_issuer: claimedIssuer });
  return withStorage(target, async (storage) => {
    const events = await select(storage, auditQuerySql(filter));
    for (const event of [...events].reverse()) printEvent(event);
    if (command === "tail")
      await follow(
        storage,
        filter,
        events.reduce((max, e) => Math.max(max, e.id), 0),
      );
    return 0;
  });
}

/** The filter options, checked as the admin route checks its query; a bad value is a usage error (exit 2). */
function filterOf(options: Record<string, string | undefined>) {
  try {
    return parseAuditFilter(options);
  } catch (err) {
    const sentence = isGatepassError(err) ? err.description : (err as Error).message;
    // The admin route's sentence names the query parameter (`limit must be ...`); here it is an option.
    const option = /^(project|target|decision|since|limit) /.exec(sentence)?.[1];
    throw new UsageError(option ? `--${sentence.replace(/\.$/, "")}, not '${options[option]}'` : sentence);
  }
}

/**
 * Every matching event after `lastId`, in id order, however many arrived between two polls (a burst
 * is read in pages until one comes back short). Ctrl-C (SIGINT) or SIGTERM ends it as a normal
 * return, so the caller's cleanup (a remote D1 config copy) runs; a poll under way when the signal
 * came (its wrangler got the terminal's Ctrl-C too) is dropped.
 */
async function follow(
  storage: StorageTarget,
  filter: ReturnType<typeof parseAuditFilter>,
  lastId: number,
): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  try {
    for (;;) {
      await sleep(TAIL_INTERVAL_MS, undefined, { signal: stop.signal });
      for (;;) {
        const page = await select(storage, auditPageAfterSql(filter, lastId, TAIL_PAGE_ROWS));
        if (stop.signal.aborted) return;
        for (const event of page) {
          printEvent(event);
          lastId = Math.max(lastId, event.id);
        }
        if (page.length < TAIL_PAGE_ROWS) break;
      }
    }
  } catch (error) {
    if (!stop.signal.aborted) throw error;
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  }
}

async function select(
  storage: StorageTarget,
  query: { sql: string; params: (string | number)[] },
): Promise<{ id: number }[]> {
  let i = 0;
  const sql = query.sql.replace(/\?/g, () => {
    const value = query.params[i++]!;
    return typeof value === "number" ? String(value) : sqlString(value);
  });
  const out = await wrangler(["d1", "execute", "DB", "--json", "--command", sql, ...(await storage.d1Flags())]);
  return (JSON.parse(out) as { results?: { id: number }[] }[]).flatMap((r) => r.results ?? []);
}

function printEvent(event: { id: number }): void {
  const { id: _id, ...rest } = event;
  process.stdout.write(`${JSON.stringify(rest)}\n`);
}

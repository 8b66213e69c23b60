// A D1 history row (policy_versions + policy_history_chunks) back to the format 1 snapshot text it
// stands for. Shared by the CLI's wrangler-driven store and the Worker's admin policy routes.

import { canonicalJson } from "./snapshot-format";

/**
 * The format 1 snapshot a history row stands for: rows written before migration 0002 hold it whole in
 * `snapshot`; later rows hold the body in chunks, and the push time is the snapshot's created_at.
 */
export function historySnapshotText(
  row: { version: string; source_digest: string; pushed_at: string; snapshot: string },
  body: string | undefined,
): string {
  if (body === undefined) return row.snapshot;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Error(`the stored body of ${row.version} is not JSON`);
  }
  return canonicalJson({
    ...(parsed as object),
    version: row.version,
    source_digest: row.source_digest,
    created_at: row.pushed_at,
  });
}

// What `policies push` reads back from D1 after writing a snapshot's history, for tests that replace
// wrangler with a recorder: the chunk rows and bytes a whole write leaves (PolicyStorage.recordVersion).
import { historyBody } from "../../cli/policy/policy-storage";
import { D1_SQL_CHUNK_BYTES } from "../../src/limits";
import type { PolicySnapshot } from "../../src/types";

export interface HistoryReadBack {
  n: number;
  bytes: number;
  chunks: number;
  active: null;
}

/** The read-back row of a first push (no version active before) of `snapshot`. */
export function historyReadBack(snapshot: PolicySnapshot): HistoryReadBack {
  const bytes = historyBody(snapshot).length;
  const n = Math.ceil(bytes / D1_SQL_CHUNK_BYTES);
  return { n, bytes, chunks: n, active: null };
}

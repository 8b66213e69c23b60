// push, history and rollback with --url: through the admin API of a running gatepass (admin-api.ts),
// authenticated by the job's ID token from GATEPASS_ID_TOKEN. The Worker validates, tests and writes
// with the same protocol as the wrangler-driven commands; the CLI validates and tests first as well,
// so a mistake shows with file and line before anything is sent.

import type { Checked } from "./policy-files";
import { AdminApi, AdminApiError } from "./admin-api";
import { casesAsJson, type TestCase } from "../../src/policy/case-runner";

/** Exit status of a write that another writer's lease kept out (as the wrangler-driven commands). */
const EXIT_BUSY = 3;

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The Worker waits for another writer's lease at most this long per request. */
const MAX_API_WAIT_SECONDS = 60;

function apiWait(seconds: number): number {
  return Math.min(seconds, MAX_API_WAIT_SECONDS);
}

/** An AdminApiError as an exit status: busy → EXIT_BUSY, any other refusal → 1. */
function refused(io: Io, action: string, e: unknown): number {
  if (!(e instanceof AdminApiError)) throw e;
  io.err(`${action} refused: ${e.message}`);
  return e.code === "policy_push_busy" ? EXIT_BUSY : 1;
}

export async function pushViaApi(
  io: Io,
  url: string,
  result: Extract<Checked, { ok: true }>,
  cases: readonly TestCase[],
  options: { force: boolean; waitSeconds: number },
): Promise<number> {
  const api = AdminApi.fromEnvironment(url);
  try {
    const pushed = await api.push({
      snapshot: result.text,
      tests: casesAsJson(cases),
      force: options.force,
      wait: apiWait(options.waitSeconds),
    });
    io.out(`pushed policy version ${pushed.version} (${url}) by ${pushed.pushed_by}`);
    return 0;
  } catch (e) {
    return refused(io, "push", e);
  }
}

export async function historyViaApi(io: Io, url: string, limit: number): Promise<number> {
  const rows = await AdminApi.fromEnvironment(url).history(limit);
  if (rows.length === 0) {
    io.out("no policy versions have been pushed");
    return 0;
  }
  for (const row of rows)
    io.out(
      `${row.active ? "*" : " "} ${row.version}  ${row.pushed_at}  ${row.pushed_by}  sources ` +
        `${row.source_digest.slice(0, 12)}`,
    );
  return 0;
}

export async function rollbackViaApi(
  io: Io,
  url: string,
  wanted: string,
  options: { force: boolean; waitSeconds: number },
): Promise<number> {
  const api = AdminApi.fromEnvironment(url);
  const { matches } = await api.findVersions(wanted);
  if (matches.length !== 1) {
    io.err(
      matches.length === 0
        ? `no pushed policy version (among the newest 100) starts with ${wanted}`
        : `${wanted} is ambiguous; give more digits`,
    );
    return 1;
  }
  try {
    const rolled = await api.rollback({
      version: matches[0]!,
      force: options.force,
      wait: apiWait(options.waitSeconds),
    });
    io.out(`rolled back to policy version ${rolled.version}`);
    return 0;
  } catch (e) {
    return refused(io, "rollback", e);
  }
}

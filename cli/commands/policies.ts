// `gatepass policies ...`: validate, test, push, history, rollback, explain, schema.
// Policies are read from --dir (default ./policies); storage is reached through wrangler.

import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { MAX_POLICY_SNAPSHOT_BYTES } from "../../src/limits";
import type { CompiledPolicy } from "../../src/policy/compile-policy";
import { verifySnapshot } from "../../src/policy/load-snapshot";
import { policyJsonSchema } from "../../src/policy/policy-schema";
import { storedSnapshot } from "../../src/policy/snapshot-format";
import { snapshotLintErrors } from "../../src/policy/snapshot-lint";
import { formatFinding, type Finding } from "../../src/policy/policy-source";
import { checkPolicyDir, type Checked } from "../policy/policy-files";
import { explain } from "../policy/explain-command";
import { diff, plan } from "../policy/plan-command";
import { pushViaApi, historyViaApi, rollbackViaApi } from "../policy/remote-commands";
import { newAttemptId, PolicyStorage } from "../policy/policy-storage";
import { writePolicy, type WriteClock, type WriteRequest, type WriteResult } from "../../src/policy/write-protocol";
import { parseTestFiles, runCase } from "../policy/policy-tests";
import { USAGE } from "../help";
import { isUsageError, UsageError } from "../usage-error";
import { withStorage } from "../remote-d1";
import { STORAGE_OPTIONS, storageTarget, type WranglerTarget } from "../wrangler";

export const usage = USAGE.policies;

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

const COMMON = { dir: { type: "string", default: "policies" } } as const;
/** Options of the commands that change what is served. */
const WRITE_OPTIONS = { by: { type: "string" }, wait: { type: "string", default: "120" } } as const;
/** --url: a running gatepass's admin API instead of wrangler (cli/policy/remote-commands.ts). */
const URL_OPTIONS = { url: { type: "string" }, force: { type: "boolean" } } as const;

/** Exit status of a push or rollback that could not take the write lease (another one is running): retry later. */
export const EXIT_BUSY = 3;
/** Lease polls: the first after this, doubling up to LEASE_POLL_MAX_MS (each is a wrangler run). */
const LEASE_POLL_MIN_MS = 200;
const LEASE_POLL_MAX_MS = 2000;

export async function run(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "validate":
        return await validate(rest);
      case "test":
        return await test(rest);
      case "push":
        return await push(rest);
      case "plan":
        return await plan(rest, out, err);
      case "diff":
        return await diff(rest, out, err);
      case "history":
        return await history(rest);
      case "rollback":
        return await rollback(rest);
      case "explain":
        return await explain(rest, { out, err });
      case "schema":
        parseArgs({ args: rest, options: {} });
        out(JSON.stringify(policyJsonSchema(), null, 2));
        return 0;
      default:
        err(`usage:\n${usage}`);
        return 2;
    }
  } catch (e) {
    if (isUsageError(e)) {
      err(`gatepass policies: ${(e as Error).message}\nusage:\n${usage}`);
      return 2;
    }
    throw e;
  }
}

function report(findings: readonly Finding[]): void {
  for (const finding of findings) err(formatFinding(finding));
}

async function checked(dir: string): Promise<Checked> {
  const result = await checkPolicyDir(dir);
  report(result.findings);
  return result;
}

async function validate(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: COMMON });
  const result = await checked(values.dir);
  if (!result.ok) {
    err(`policies are invalid: ${result.findings.filter((f) => f.severity === "error").length} error(s)`);
    return 1;
  }
  const { issuers, targets, rules } = result.snapshot;
  out(
    `policies are valid: ${issuers.length} issuers, ${targets.length} targets, ${rules.length} rules (version ` +
      `${result.snapshot.version})`,
  );
  return 0;
}

/** Runs the policy tests; prints one line per case. Returns whether everything passed. */
async function runTests(result: Extract<Checked, { ok: true }>, quiet: boolean): Promise<boolean> {
  const { cases, findings } = parseTestFiles(result.dir.tests, result.policy);
  report(findings);
  if (findings.length > 0) return false;
  let failed = 0;
  for (const testCase of cases) {
    const { failures } = runCase(result.policy, testCase);
    if (failures.length === 0) {
      if (!quiet) out(`PASS ${testCase.file}:${testCase.line} ${testCase.name}`);
      continue;
    }
    failed++;
    out(`FAIL ${testCase.file}:${testCase.line} ${testCase.name}`);
    for (const failure of failures) out(`     ${failure}`);
  }
  out(`${cases.length - failed}/${cases.length} policy test cases passed`);
  return failed === 0;
}

async function test(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: COMMON });
  const result = await checked(values.dir);
  if (!result.ok) return 1;
  if (result.dir.tests.length === 0) {
    err(`no policy tests (*.test.yaml) in '${values.dir}'`);
    return 1;
  }
  return (await runTests(result, false)) ? 0 : 1;
}

export function whoAmI(): string {
  try {
    const email = execFileSync("git", ["config", "user.email"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    if (email) return email;
  } catch {
    // not a git checkout, or no user.email
  }
  return process.env.USER || process.env.USERNAME || "unknown";
}

async function push(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...COMMON, ...STORAGE_OPTIONS, ...WRITE_OPTIONS, ...URL_OPTIONS } });
  const target = values.url === undefined ? storageTarget(values) : undefined;
  const waitSeconds = parseWait(values.wait);
  const result = await checked(values.dir);
  if (!result.ok) {
    err("push refused: the policies are invalid; nothing was changed");
    return 1;
  }
  if (result.dir.tests.length > 0 && !(await runTests(result, true))) {
    err("push refused: policy tests fail; nothing was changed");
    return 1;
  }
  // The Worker names the pusher (its verified identity) and runs the cases again itself.
  if (values.url !== undefined)
    return pushViaApi({ out, err }, values.url, result, parseTestFiles(result.dir.tests, result.policy).cases, {
      force: values.force === true,
      waitSeconds,
    });
  const by = (values.by ?? whoAmI()).slice(0, 200);
  const pushedAt = new Date().toISOString();
  // created_at is the push time: D1 keeps the push time, and a rollback restores the snapshot with it.
  const snapshot = { ...result.snapshot, created_at: pushedAt };
  const stored = await storedSnapshot(snapshot);
  if (stored.payload.length > MAX_POLICY_SNAPSHOT_BYTES) {
    err(
      `push refused: the stored snapshot is ${stored.payload.length} bytes; the Worker loads at most ` +
        `${MAX_POLICY_SNAPSHOT_BYTES}; nothing was changed`,
    );
    return 1;
  }
  // The Worker's own gate, for every rule: never write what it would refuse.
  await verifySnapshot(stored.text);

  return withStorage(target!, async (where) => {
    const storage = new PolicyStorage(where);
    const write = { action: "push", version: snapshot.version, by, waitSeconds } as const;
    const code = exitStatusOf(await writePolicy(storage, CLI_CLOCK, write, stored, { snapshot, pushedAt }), "push");
    if (code === 0) out(`pushed policy version ${snapshot.version} (${where.remote ? "remote" : "local"}) by ${by}`);
    return code;
  });
}

function parseWait(text: string): number {
  const seconds = Number(text);
  if (!/^\d+$/.test(text) || seconds > 3600) throw new UsageError("--wait is a number of seconds from 0 to 3600");
  return seconds;
}

/** The CLI's clock for the write protocol: lease polls are wrangler runs, so not too often. */
const CLI_CLOCK: WriteClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  pollMs: { min: LEASE_POLL_MIN_MS, max: LEASE_POLL_MAX_MS },
  newAttemptId,
};

/** An exit status for how a push or rollback ended (src/policy/write-protocol.ts), saying why on stderr. */
function exitStatusOf(result: WriteResult, action: WriteRequest["action"]): number {
  switch (result.outcome) {
    case "activated":
      if (result.cleanupError !== undefined)
        err(
          `warning: deleting unused snapshot chunks from KV failed; the next push deletes them. ` +
            `(${result.cleanupError})`,
        );
      return 0;
    case "busy":
      err(
        `${action} refused: ${result.sentence}; nothing was changed. Run it again once that one has finished (see ` +
          `\`policies history --attempts\`), or give a longer --wait.`,
      );
      return EXIT_BUSY;
    case "lost":
      err(
        result.servedChanged
          ? `${action} lost its lease: ${result.sentence}; run the push or rollback that should be active again.`
          : `${action} refused: ${result.sentence}; what is served was not changed. Run it again.`,
      );
      return EXIT_BUSY;
  }
}

async function history(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORAGE_OPTIONS,
      limit: { type: "string", default: "50" },
      attempts: { type: "boolean" },
      url: { type: "string" },
    },
  });
  // Digits only: parseInt would read "5x" as 5.
  const limit = /^\d{1,4}$/.test(values.limit) ? Number(values.limit) : Number.NaN;
  if (!(limit > 0 && limit <= 1000)) throw new UsageError(`--limit is a number from 1 to 1000, not '${values.limit}'`);
  if (values.url !== undefined) {
    if (values.attempts) throw new UsageError("--attempts reads D1 through wrangler; it does not go with --url");
    return historyViaApi({ out, err }, values.url, limit);
  }
  if (values.attempts) return attemptHistory(storageTarget(values), limit);
  const rows = await withStorage(storageTarget(values), (storage) => new PolicyStorage(storage).history(limit));
  if (rows.length === 0) {
    out("no policy versions have been pushed");
    return 0;
  }
  for (const row of rows)
    out(
      `${row.active ? "*" : " "} ${row.version}  ${row.pushed_at}  ${row.pushed_by}  sources ` +
        `${row.source_digest.slice(0, 12)}`,
    );
  return 0;
}

/** Every push and rollback attempt, newest first: `#seq action version by outcome [replaced] [detail]`. */
async function attemptHistory(target: WranglerTarget, limit: number): Promise<number> {
  const rows = await withStorage(target, (storage) => new PolicyStorage(storage).attempts(limit));
  if (rows.length === 0) {
    out("no policy pushes or rollbacks have been attempted");
    return 0;
  }
  for (const row of rows) {
    const replaced = row.replaced ? `  replaced ${row.replaced.slice(0, 12)}` : "";
    out(
      `#${row.seq} ${row.action} ${row.version}  ${row.pushed_by}  ${row.outcome}${replaced}${row.detail ? `  (${row.detail})` : ""}`,
    );
  }
  return 0;
}

async function rollback(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...STORAGE_OPTIONS, ...WRITE_OPTIONS, ...URL_OPTIONS },
    allowPositionals: true,
  });
  const [wanted, ...extra] = positionals;
  if (!wanted || extra.length > 0 || !/^[0-9a-f]{8,64}$/.test(wanted)) {
    err("usage: policies rollback VERSION   (the version or at least its first 8 hex digits, see `policies history`)");
    return 2;
  }
  const waitSeconds = parseWait(values.wait);
  if (values.url !== undefined)
    return rollbackViaApi({ out, err }, values.url, wanted, { force: values.force === true, waitSeconds });
  const by = (values.by ?? whoAmI()).slice(0, 200);
  return withStorage(storageTarget(values), (target) => rollbackTo(new PolicyStorage(target), wanted, by, waitSeconds));
}

async function rollbackTo(storage: PolicyStorage, wanted: string, by: string, waitSeconds: number): Promise<number> {
  const { matches } = await storage.findVersions(wanted);
  if (matches.length !== 1) {
    err(
      matches.length === 0
        ? `no pushed policy version starts with ${wanted}`
        : `${wanted} is ambiguous; give more digits`,
    );
    return 1;
  }
  const version = matches[0]!;
  let text: string;
  let policy: CompiledPolicy;
  try {
    text = await storage.readVersion(version);
    policy = await verifySnapshot(text);
  } catch (e) {
    err(
      `rollback refused: the stored snapshot of ${version} is not valid (${(e as Error).message}); nothing was changed`,
    );
    return 1;
  }
  const lintErrors = snapshotLintErrors(text);
  if (lintErrors.length > 0) {
    err(
      `rollback refused: ${version} fails checks that push runs today; nothing was changed. Fix the policies and ` +
        `push instead:`,
    );
    for (const line of lintErrors) err(`  ${line}`);
    return 1;
  }
  const stored = await storedSnapshot(policy.snapshot);
  const code = exitStatusOf(
    await writePolicy(storage, CLI_CLOCK, { action: "rollback", version, by, waitSeconds }, stored),
    "rollback",
  );
  if (code === 0) out(`rolled back to policy version ${version}`);
  return code;
}

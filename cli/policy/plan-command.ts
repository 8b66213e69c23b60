// `gatepass policies plan` and `policies diff`: what a policy change does before it lands.
//   plan  the local policies against the active version (or --against VERSION): the static diff, then a
//         replay of every identity seen in the last --days days under both versions
//   diff  two pushed versions: the static diff only
// plan also takes --url URL: the admin API of a running gatepass, with the job's ID token from
// GATEPASS_ID_TOKEN (gatepass:policies-plan), instead of wrangler; and --against-dir DIR: another
// policies directory (a merge request's target branch), the static part only, reaching nothing.
// Exit codes: 0 no decision changes, 3 decisions change (plan with replay) or the versions differ
// (diff), 1 refused (invalid policies, unknown version, storage failure), 2 usage.

import { parseArgs } from "node:util";
import type { CompiledPolicy } from "../../src/policy/compile-policy";
import { verifySnapshot } from "../../src/policy/load-snapshot";
import type { PolicyParts } from "../../src/policy/policy-schema";
import { formatFinding } from "../../src/policy/policy-source";
import { DEFAULT_AUDIT_RETENTION_DAYS } from "../../src/limits";
import { withStorage } from "../remote-d1";
import { UsageError } from "../usage-error";
import { STORAGE_OPTIONS, storageTarget } from "../wrangler";
import { checkPolicyDir } from "./policy-files";
import { planJson, planMarkdown, planText, type Plan } from "./plan-report";
import { diffPolicies, isEmptyDiff } from "./policy-diff";
import { replayDecisions } from "./policy-replay";
import { AdminApi } from "./admin-api";
import { PolicyStorage } from "./policy-storage";

/** What a plan reads: through wrangler (PolicyStorage) or the admin API (AdminApi). */
type PlanSource = Pick<PolicyStorage, "activeVersion" | "findVersions" | "readVersion" | "seenIdentities">;

/** Exit code of a plan whose replay finds a changed decision (and of a diff between different versions). */
export const EXIT_DECISIONS_CHANGE = 3;

const OUTPUT_OPTIONS = { json: { type: "boolean" }, markdown: { type: "boolean" } } as const;

export async function plan(
  args: string[],
  print: (text: string) => void,
  warn: (text: string) => void,
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORAGE_OPTIONS,
      ...OUTPUT_OPTIONS,
      dir: { type: "string", default: "policies" },
      against: { type: "string" },
      days: { type: "string", default: "30" },
      "no-replay": { type: "boolean" },
      url: { type: "string" },
      "against-dir": { type: "string" },
    },
  });
  const render = renderer(values);
  const days = Number(values.days);
  if (!/^\d+$/.test(values.days) || days < 1 || days > DEFAULT_AUDIT_RETENTION_DAYS) {
    throw new UsageError(
      `--days is a whole number of days from 1 to ${DEFAULT_AUDIT_RETENTION_DAYS} (the audit retention)`,
    );
  }
  if (values.against !== undefined) versionPrefix(values.against, "--against");
  const local = await checkPolicyDir(values.dir);
  if (!local.ok) {
    for (const finding of local.findings) warn(formatFinding(finding));
    warn("plan refused: the local policies are invalid (gatepass policies validate shows why)");
    return 1;
  }
  if (values["against-dir"] !== undefined) {
    if (values.against !== undefined || values.url !== undefined || values.remote || values.local) {
      throw new UsageError(
        "--against-dir compares two directories: it does not go with --against, --url, --local or --remote",
      );
    }
    return planAgainstDir(local, values["against-dir"], render, print, warn);
  }
  // --url: the admin API of a running gatepass, with the job's ID token (admin-api.ts); else wrangler.
  const withSource = <T>(use: (source: PlanSource) => Promise<T>): Promise<T> =>
    values.url !== undefined
      ? use(AdminApi.fromEnvironment(values.url))
      : withStorage(storageTarget(values), (target) => use(new PolicyStorage(target)));
  return withSource(async (storage) => {
    const before = await readPushed(storage, values.against);
    if (typeof before === "string") {
      warn(`plan refused: ${before}`);
      return 1;
    }
    const after = local.policy;
    const result: Plan = {
      before: { version: before.version, label: values.against ? "pushed" : "active" },
      after: { version: after.version, label: "local" },
      diff: diffPolicies(parts(before), parts(after)),
    };
    if (!values["no-replay"]) {
      const since = new Date(Date.now() - days * 86_400_000).toISOString();
      result.replay = { ...replayDecisions(before, after, await storage.seenIdentities(since)), days };
    }
    print(render(result));
    return result.replay && result.replay.changed > 0 ? EXIT_DECISIONS_CHANGE : 0;
  });
}

/**
 * The static part of a plan between two policy directories (a merge request's policies and its target
 * branch's), reaching no storage and no gatepass: what a pipeline that may hold no capability can
 * show. Exit 3 when they differ, 0 when not, 1 when the base does not validate.
 */
async function planAgainstDir(
  local: Extract<Awaited<ReturnType<typeof checkPolicyDir>>, { ok: true }>,
  baseDir: string,
  render: (plan: Plan) => string,
  print: (text: string) => void,
  warn: (text: string) => void,
): Promise<number> {
  const base = await checkPolicyDir(baseDir);
  if (!base.ok) {
    warn(
      `plan refused: the policies in ${baseDir} are invalid (gatepass policies validate --dir ${baseDir} shows why)`,
    );
    return 1;
  }
  const result: Plan = {
    before: { version: base.policy.version, label: "base" },
    after: { version: local.policy.version, label: "local" },
    diff: diffPolicies(parts(base.policy), parts(local.policy)),
  };
  print(render(result));
  return isEmptyDiff(result.diff) ? 0 : EXIT_DECISIONS_CHANGE;
}

export async function diff(
  args: string[],
  print: (text: string) => void,
  warn: (text: string) => void,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...STORAGE_OPTIONS, ...OUTPUT_OPTIONS },
    allowPositionals: true,
  });
  if (positionals.length !== 2) throw new UsageError("give two versions: policies diff V1 V2 (see policies history)");
  const [from, to] = positionals.map((v, i) => versionPrefix(v, i === 0 ? "V1" : "V2")) as [string, string];
  const render = renderer(values);
  return withStorage(storageTarget(values), async (target) => {
    const storage = new PolicyStorage(target);
    const before = await readPushed(storage, from);
    const after = typeof before === "string" ? before : await readPushed(storage, to);
    if (typeof before === "string" || typeof after === "string") {
      warn(`diff refused: ${typeof before === "string" ? before : after}`);
      return 1;
    }
    const result: Plan = {
      before: { version: before.version, label: "pushed" },
      after: { version: after.version, label: "pushed" },
      diff: diffPolicies(parts(before), parts(after)),
    };
    print(render(result));
    return isEmptyDiff(result.diff) ? 0 : EXIT_DECISIONS_CHANGE;
  });
}

function renderer(values: { json?: boolean; markdown?: boolean }): (plan: Plan) => string {
  if (values.json && values.markdown) throw new UsageError("give at most one of --json and --markdown");
  return values.json ? planJson : values.markdown ? planMarkdown : planText;
}

function versionPrefix(value: string, what: string): string {
  if (!/^[0-9a-f]{8,64}$/.test(value))
    throw new UsageError(`${what}: a version, or at least its first 8 hex digits (see policies history)`);
  return value;
}

/** The active version, or the pushed version starting with `prefix`; a sentence when there is none. */
async function readPushed(storage: PlanSource, prefix: string | undefined): Promise<CompiledPolicy | string> {
  let version: string | undefined;
  if (prefix === undefined) {
    version = await storage.activeVersion();
    if (version === undefined) return "no policy version is active yet: push one first (gatepass policies push)";
  } else {
    const { matches } = await storage.findVersions(prefix);
    if (matches.length !== 1)
      return matches.length === 0
        ? `no pushed policy version starts with ${prefix}`
        : `${prefix} is ambiguous; give more digits`;
    version = matches[0]!;
  }
  try {
    return await verifySnapshot(await storage.readVersion(version));
  } catch (e) {
    return `the stored snapshot of ${version} is not valid (${(e as Error).message})`;
  }
}

function parts(policy: CompiledPolicy): PolicyParts {
  const { issuers, targets, rules } = policy.snapshot;
  return { issuers, targets, rules };
}

// The admin API's push and rollback (PUT /v1/admin/policies, POST /v1/admin/policies/rollback): every
// guarantee the CLI's push has, in the Worker. The snapshot arrives as JSON text (the Worker never
// parses YAML) and is checked as push and rollback check it (verifySnapshot, lint errors refuse), the
// test cases sent with it must pass, a write that would remove every rule granting
// gatepass:policies-push is refused unless forced (lockout guard), and the write runs the one write
// protocol (src/policy/write-protocol.ts) through the bindings.

import type { Env } from "../config";
import type { Deps } from "../deps";
import { GatepassError } from "../errors";
import { MAX_POLICY_SNAPSHOT_BYTES } from "../limits";
import { BindingPolicyStorage } from "../policy/binding-storage";
import { readJsonCases, runCase } from "../policy/case-runner";
import type { CompiledPolicy } from "../policy/compile-policy";
import { verifySnapshot } from "../policy/load-snapshot";
import { storedSnapshot } from "../policy/snapshot-format";
import { snapshotLintErrors } from "../policy/snapshot-lint";
import { writePolicy, type WriteResult } from "../policy/write-protocol";
import type { PolicySnapshot } from "../types";

/** How long a request waits for another writer's lease at most: a Worker request should not hang. */
export const MAX_PUSH_WAIT_SECONDS = 60;
/** The body of a push: the snapshot text, its JSON escaping and the test cases. */
export const MAX_PUSH_BODY_BYTES = MAX_POLICY_SNAPSHOT_BYTES + 8 * 1024 * 1024;
const PUSH_CAPABILITY = "gatepass:policies-push";

export interface PushRequest {
  /** A format 1 snapshot (as `policies push` builds it), as JSON text. */
  snapshot: string;
  tests: unknown[];
  force: boolean;
  wait: number;
}

/** The body's fields, strictly; request_invalid naming what is wrong. */
export function readPushRequest(body: unknown): PushRequest {
  const fail = (sentence: string) => new GatepassError("request_invalid", { description: sentence });
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw fail("The body is a JSON object: { snapshot, tests, force, wait }.");
  const fields = body as Record<string, unknown>;
  for (const key of Object.keys(fields))
    if (!["snapshot", "tests", "force", "wait"].includes(key))
      throw fail("The body takes only snapshot, tests, force and wait.");
  if (typeof fields.snapshot !== "string")
    throw fail("snapshot is the policy snapshot's JSON text, as `gatepass policies push --url` sends it.");
  const wait = fields.wait ?? 30;
  if (!Number.isInteger(wait) || (wait as number) < 0 || (wait as number) > MAX_PUSH_WAIT_SECONDS)
    throw fail(`wait is a whole number of seconds from 0 to ${MAX_PUSH_WAIT_SECONDS}.`);
  if (fields.force !== undefined && typeof fields.force !== "boolean") throw fail("force is true or false.");
  return {
    snapshot: fields.snapshot,
    tests: (fields.tests ?? []) as unknown[],
    force: fields.force === true,
    wait: wait as number,
  };
}

/** Whether some rule of the policy grants gatepass:policies-push. */
function grantsPush(policy: CompiledPolicy): boolean {
  return policy.snapshot.rules.some((rule) => rule.allow.includes(PUSH_CAPABILITY));
}

/** The lockout guard: refuses removing the last push grant while the active version has one, unless forced. */
function refuseLockout(active: CompiledPolicy | undefined, next: CompiledPolicy, force: boolean): void {
  if (force || !active || !grantsPush(active) || grantsPush(next)) return;
  throw new GatepassError("policy_lockout");
}

/** verifySnapshot and today's lint, as the CLI's rollback runs them: policy_invalid saying why. */
async function checkedSnapshot(text: string): Promise<CompiledPolicy> {
  let policy: CompiledPolicy;
  try {
    policy = await verifySnapshot(text);
  } catch (err) {
    throw new GatepassError("policy_invalid", {
      description: `The snapshot is not valid: ${(err as Error).message.slice(0, 500)}. Nothing was changed.`,
    });
  }
  const lint = snapshotLintErrors(text);
  if (lint.length > 0) {
    throw new GatepassError("policy_invalid", {
      description: `Lint refuses the policy; nothing was changed: ${lint.slice(0, 5).join("; ").slice(0, 1500)}`,
    });
  }
  return policy;
}

export interface WriteContext {
  env: Env;
  deps: Deps;
  /** The verified actor (`admin` or `ci:<issuer>:<project_id>:<job_id>`): pushed_by in history. */
  by: string;
  /** The version D1 flags active, for the lockout guard (undefined when none is). */
  active: CompiledPolicy | undefined;
}

export async function pushPolicy(
  ctx: WriteContext,
  request: PushRequest,
): Promise<{ version: string; replaced: string | undefined }> {
  const checked = await checkedSnapshot(request.snapshot);
  let cases;
  try {
    cases = readJsonCases(request.tests);
  } catch (err) {
    throw new GatepassError("request_invalid", { description: `tests: ${(err as Error).message}.` });
  }
  const failures = cases.flatMap((c) => runCase(checked, c).failures.map((f) => `${c.name}: ${f}`));
  if (failures.length > 0) {
    throw new GatepassError("policy_tests_failed", {
      description:
        `${failures.length} expectation(s) fail; nothing was changed: ` +
        `${failures.slice(0, 5).join("; ").slice(0, 1500)}`,
    });
  }
  refuseLockout(ctx.active, checked, request.force);
  const pushedAt = new Date(ctx.deps.now()).toISOString();
  // created_at is the push time, as the CLI sets it: D1 keeps it and a rollback restores it.
  const snapshot: PolicySnapshot = { ...checked.snapshot, rules: checked.snapshot.rules, created_at: pushedAt };
  const stored = await storedSnapshot(snapshot);
  if (stored.payload.length > MAX_POLICY_SNAPSHOT_BYTES)
    throw new GatepassError("policy_invalid", {
      description:
        `The stored snapshot is ${stored.payload.length} bytes; the Worker loads at most ` +
        `${MAX_POLICY_SNAPSHOT_BYTES}.`,
    });
  await verifySnapshot(stored.text);
  const result = await writePolicy(
    new BindingPolicyStorage(ctx.env),
    workerClock(ctx.deps),
    { action: "push", version: snapshot.version, by: ctx.by, waitSeconds: request.wait },
    stored,
    { snapshot, pushedAt },
  );
  return { version: snapshot.version, replaced: activatedOrThrow(result) };
}

export async function rollbackPolicy(
  ctx: WriteContext,
  text: string,
  version: string,
  options: { force: boolean; wait: number },
): Promise<{ version: string; replaced: string | undefined }> {
  const checked = await checkedSnapshot(text);
  refuseLockout(ctx.active, checked, options.force);
  const stored = await storedSnapshot(checked.snapshot);
  const result = await writePolicy(
    new BindingPolicyStorage(ctx.env),
    workerClock(ctx.deps),
    { action: "rollback", version, by: ctx.by, waitSeconds: options.wait },
    stored,
  );
  return { version, replaced: activatedOrThrow(result) };
}

function activatedOrThrow(result: WriteResult): string | undefined {
  if (result.outcome === "activated") return result.replaced;
  throw new GatepassError("policy_push_busy", {
    description:
      result.outcome === "busy"
        ? `Not written: ${result.sentence}. Retry once it has finished, or send a longer wait.`
        : `${result.sentence}${
            result.servedChanged
              ? "; push the version that should be active again"
              : "; nothing " + "served changed, retry"
          }.`,
  });
}

/** Lease polls in the Worker: cheap D1 statements, so sooner than the CLI's wrangler runs. */
function workerClock(deps: Deps) {
  return {
    now: () => deps.now(),
    sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
    pollMs: { min: 50, max: 1000 },
    newAttemptId: () =>
      [...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, "0")).join(""),
  };
}

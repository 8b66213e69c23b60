// Per-job use limits (`max_uses_per_job` on a rule), counted in D1 `use_counters`. Only requests
// allowed by a rule with a limit pay for this D1 write; everything else stays off D1. A limit that
// cannot be checked is not enforced by hope: the request fails closed.

import type { Env } from "../config";
import { GatepassError } from "../errors";
import type { VerifiedIdentity } from "../types";
import type { CompiledPolicy } from "../policy/compile-policy";

/** The rule's use limit for this target, if it has one. */
export function useLimit(policy: CompiledPolicy, issuer: string, target: string, rule: string): number | undefined {
  const granting = policy.ruleNamed(issuer, rule);
  return granting?.allows.has(target) ? granting.spec.max_uses_per_job : undefined;
}

/** Counts one use of `target` by the job; refuses with use_limit_exceeded beyond `max`. */
export async function countUse(env: Env, identity: VerifiedIdentity, target: string, max: number): Promise<void> {
  const jobId = identity.claims.job_id;
  if (typeof jobId !== "string") {
    throw new GatepassError("use_limit_exceeded", {
      description: `Target '${target}' is limited per job, and this token names no job_id.`,
    });
  }
  let uses: number | undefined;
  try {
    const row = await env.DB.prepare(
      "INSERT INTO use_counters (issuer, job_id, target, uses, expires_at) VALUES (?, ?, ?, 1, ?) " +
        "ON CONFLICT (issuer, job_id, target) DO UPDATE SET uses = uses + 1 RETURNING uses",
    )
      .bind(identity.issuer, jobId, target, identity.expiresAt)
      .first<{ uses: number }>();
    uses = row?.uses;
  } catch (err) {
    throw new GatepassError("use_limit_unavailable", { cause: err });
  }
  if (uses === undefined) throw new GatepassError("use_limit_unavailable");
  if (uses > max) {
    throw new GatepassError("use_limit_exceeded", {
      description: `This job has used target '${target}' ${max} time${max === 1 ? "" : "s"}, the most its rule allows.`,
    });
  }
}

/** Deletes counters of jobs whose tokens have expired; returns how many. */
export async function pruneUseCounters(env: Env, nowSeconds: number): Promise<number> {
  const result = await env.DB.prepare("DELETE FROM use_counters WHERE expires_at < ?").bind(nowSeconds).run();
  return result.meta.changes ?? 0;
}

// `npm run bench -- plan`: `policies plan` at scale, in Node where the CLI runs it: the static diff of
// two 10 000-rule versions, and the replay of 100 000 seen identities against both. Three runs each,
// worst figure printed. The second version differs from the first in one rule in a hundred (a new
// project, a narrowed ref), so that some identities change decision as in a real review.
import { performance } from "node:perf_hooks";
import { diffPolicies } from "../cli/policy/policy-diff";
import { replayDecisions, type SeenIdentity } from "../cli/policy/policy-replay";
import { compilePolicy } from "../src/policy/compile-policy";
import { buildSnapshot } from "../src/policy/snapshot-format";
import type { RuleSpec } from "../src/types";
import { ISSUER, jobsFor, rulesFor, TARGETS } from "./policy-mixes";

const RULES = 10_000;
const IDENTITIES = 100_000;
const RUNS = 3;

function changed(rules: RuleSpec[]): RuleSpec[] {
  return rules.map((rule, i) => (i % 100 === 0 ? { ...rule, match: { ...rule.match, ref: "release/*" } } : rule));
}

export async function run(): Promise<void> {
  const before = { issuers: [ISSUER], targets: TARGETS, rules: rulesFor("mixed", RULES) };
  const after = { ...before, rules: changed(before.rules) };
  const build = async (parts: typeof before) =>
    compilePolicy(
      (await buildSnapshot(parts, { sourceDigest: "0".repeat(64), createdAt: new Date(0).toISOString() })).snapshot,
    );
  const seen: SeenIdentity[] = jobsFor(RULES, IDENTITIES).map(({ identity }) => ({
    issuer: identity.issuer,
    claims: identity.claims,
    count: 1,
    firstSeen: "2026-12-01T00:00:00.000Z",
    lastSeen: "2026-12-01T00:00:00.000Z",
  }));
  const worst = { diff: { wall: 0, cpu: 0 }, replay: { wall: 0, cpu: 0 } };
  for (let i = 0; i < RUNS; i++) {
    let mark = start();
    const diff = diffPolicies(before, after);
    record(worst.diff, mark);
    mark = start();
    const [a, b] = await Promise.all([build(before), build(after)]);
    const replay = replayDecisions(a, b, seen);
    record(worst.replay, mark);
    if (i === 0)
      console.log(
        `${diff.targets.length} targets changed; replay: ${replay.changed} of ${replay.identities} identities change decision`,
      );
  }
  const show = (w: { wall: number; cpu: number }) =>
    `${(w.wall / 1000).toFixed(2)} s wall, ${(w.cpu / 1000).toFixed(2)} s CPU`;
  console.log(
    `static diff of two ${RULES}-rule versions (lint included), worst of ${RUNS}: ${show(worst.diff)} (target ≤ 2 s)`,
  );
  console.log(
    `replay of ${IDENTITIES} identities against both (compiling both included), worst of ${RUNS}: ${show(worst.replay)} (target ≤ 10 s)`,
  );
}

/** Wall and CPU (user + system) milliseconds: the CPU figure holds on a shared machine, the wall one says what a user waits. */
function start(): { wall: number; cpu: NodeJS.CpuUsage } {
  return { wall: performance.now(), cpu: process.cpuUsage() };
}

function record(worst: { wall: number; cpu: number }, mark: ReturnType<typeof start>): void {
  const cpu = process.cpuUsage(mark.cpu);
  worst.wall = Math.max(worst.wall, performance.now() - mark.wall);
  worst.cpu = Math.max(worst.cpu, (cpu.user + cpu.system) / 1000);
}

// Bench Worker (run by bench/policy.ts inside local workerd). The isolate's clock stands still while
// it computes and moves on at I/O, so every figure is a batch of work between two I/O boundaries
// (a KV read of a missing key), less the cost of such a boundary alone, measured alongside.
//   POST /setup?mix=M&count=N[&format=1]  build the mix's snapshot and store it in KV as push does
//   GET  /warm?mix=M&count=N&op=O&jobs=J&ms=T   per job, the mean µs of `evaluate` (op=evaluate) or of
//        whoami's policy work (op=whoami: grants and a ?target= explanation), repeated for about T ms,
//        the lowest of three such batches
//   GET  /cold?source=memory|kv&job=K     the policy work of a fresh isolate's first request: load the
//        snapshot KV holds and decide one job. source=memory reads the KV values first (not timed) and
//        times decoding them, loading and deciding: CPU only. source=kv times the store as the Worker
//        runs it, local KV reads included.
import type { Env } from "../src/config";
import { buildSnapshot, payloadChunks, storedSnapshot } from "../src/policy/snapshot-format";
import type { CompiledPolicy } from "../src/policy/compile-policy";
import { loadSnapshot } from "../src/policy/load-snapshot";
import { evaluate, explainTarget, grantsFor } from "../src/policy/evaluate";
import { normalizePolicy } from "../src/policy/policy-schema";
import { ACTIVE_SNAPSHOT_KEY, payloadChunkKey, PolicyStore } from "../src/policy/active-policy";
import { STORED_HEADER_START } from "../src/policy/snapshot-format";
import { ISSUER, jobsFor, MIXES, rulesFor, TARGETS, type Mix } from "./policy-mixes";

const policies = new Map<string, CompiledPolicy>();

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const param = (name: string) => url.searchParams.get(name) ?? "";
    const mix = param("mix") as Mix;
    const count = Number(param("count"));
    if (url.pathname === "/setup" && MIXES.includes(mix)) {
      const { snapshot, text } = await snapshotOf(mix, count);
      if (param("format") === "1") {
        await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, text);
        return Response.json({ bytes: text.length });
      }
      const stored = await storedSnapshot(snapshot);
      for (const [i, chunk] of payloadChunks(stored.payload).entries())
        await env.POLICIES.put(payloadChunkKey(stored.header, i), chunk);
      await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, stored.headerText);
      return Response.json({ bytes: stored.text.length, chunks: stored.header.chunks });
    }
    if (url.pathname === "/warm" && MIXES.includes(mix)) {
      const key = `${mix}:${count}`;
      let policy = policies.get(key);
      if (!policy) {
        policy = await loadSnapshot((await storedSnapshot((await snapshotOf(mix, count)).snapshot)).text);
        policies.set(key, policy);
      }
      return Response.json(await warm(env, policy, count, param("op"), Number(param("jobs")), Number(param("ms"))));
    }
    if (url.pathname === "/cold") return Response.json(await cold(env, param("source"), Number(param("job"))));
    return new Response("not found", { status: 404 });
  },
} satisfies ExportedHandler<Env>;

async function snapshotOf(mix: Mix, count: number) {
  const { policy, problems } = normalizePolicy(
    [{ name: "bench", value: { issuers: [ISSUER], targets: TARGETS, rules: rulesFor(mix, count) } }],
    "snapshot",
  );
  if (problems.length > 0) throw new Error(`bench policy invalid: ${problems[0]!.message}`);
  return buildSnapshot(policy, { sourceDigest: "0".repeat(64), createdAt: new Date(0).toISOString() });
}

/** An I/O boundary: the clock reads the time it completes. */
const boundary = (env: Env) => env.POLICIES.get("bench:boundary");

/** Milliseconds `work` takes, between two boundaries, less a boundary alone (the median of three). */
async function timed(env: Env, work: () => unknown): Promise<number> {
  const empty: number[] = [];
  for (let i = 0; i < 3; i++) {
    await boundary(env);
    const started = Date.now();
    await boundary(env);
    empty.push(Date.now() - started);
  }
  await boundary(env);
  const started = Date.now();
  await work();
  await boundary(env);
  return Date.now() - started - empty.sort((a, b) => a - b)[1]!;
}

async function warm(
  env: Env,
  policy: CompiledPolicy,
  count: number,
  op: string,
  jobCount: number,
  targetMs: number,
): Promise<{ perJobUs: number[]; decisions: number }> {
  const jobs = jobsFor(count, jobCount);
  const run =
    op === "whoami"
      ? (job: (typeof jobs)[number]) => {
          grantsFor(policy, job.identity);
          explainTarget(policy, job.identity, job.target, "candidates");
        }
      : (job: (typeof jobs)[number]) => evaluate(policy, job.identity, job.target);
  // Every job once first: rules are compiled on first use, and that is the cold side, not this one.
  let allowed = 0;
  for (const job of jobs) if (evaluate(policy, job.identity, job.target).allowed) allowed++;
  for (const job of jobs) run(job);
  // Repetitions per job so one batch takes about targetMs (the clock has a millisecond's resolution).
  const probe = 2_000;
  const probeMs = Math.max(
    1,
    await timed(env, () => {
      for (let i = 0; i < probe; i++) run(jobs[i % jobs.length]!);
    }),
  );
  const reps = Math.max(100, Math.round((probe * targetMs) / probeMs));
  // Each job's cost is the lowest of three batches: a batch the machine's other work interrupted
  // (the benchmark host is shared) says nothing about the job.
  const perJobUs: number[] = [];
  for (const job of jobs) {
    let best = Infinity;
    for (let batch = 0; batch < 3; batch++)
      best = Math.min(
        best,
        await timed(env, () => {
          for (let i = 0; i < reps; i++) run(job);
        }),
      );
    perJobUs.push((best * 1000) / reps);
  }
  return { perJobUs, decisions: allowed };
}

async function cold(
  env: Env,
  source: string,
  jobNumber: number,
): Promise<{ ms: number; version: string; allowed: boolean; rules: number }> {
  const header = await env.POLICIES.get(ACTIVE_SNAPSHOT_KEY);
  if (header === null) throw new Error("no snapshot in KV: POST /setup first");
  let count = 0;
  let decide: () => Promise<{ policy: CompiledPolicy; allowed: boolean }>;
  const store = new PolicyStore({ fetch, now: () => Date.now() });
  const jobFor = (policy: CompiledPolicy) => {
    count = policy.ruleCount;
    return jobsFor(count, jobNumber + 1)[jobNumber]!;
  };
  if (source === "memory") {
    // The values KV would return, as bytes: decoding any of them to text is part of what is timed.
    const values = new Map<string, ArrayBuffer>([
      [ACTIVE_SNAPSHOT_KEY, new TextEncoder().encode(header).buffer as ArrayBuffer],
    ]);
    if (header.startsWith(STORED_HEADER_START)) {
      const { chunks, version, index_sha256 } = JSON.parse(header) as {
        chunks: number;
        version: string;
        index_sha256: string;
      };
      for (let i = 0; i < chunks; i++) {
        const key = payloadChunkKey({ version, index_sha256 }, i);
        values.set(key, (await env.POLICIES.get(key, "arrayBuffer"))!);
      }
    }
    const decoder = new TextDecoder();
    const memory = {
      get: (key: string, type?: string) =>
        Promise.resolve(
          !values.has(key)
            ? null
            : type === "arrayBuffer"
              ? values.get(key)!.slice(0)
              : decoder.decode(values.get(key)),
        ),
    } as unknown as KVNamespace;
    decide = async () => {
      const policy = await store.current({ ...env, POLICIES: memory }, () => {});
      const job = jobFor(policy);
      return { policy, allowed: evaluate(policy, job.identity, job.target).allowed };
    };
  } else {
    decide = async () => {
      const policy = await store.current(env, () => {});
      const job = jobFor(policy);
      return { policy, allowed: evaluate(policy, job.identity, job.target).allowed };
    };
  }
  let result: { policy: CompiledPolicy; allowed: boolean } | undefined;
  const ms = await timed(env, async () => {
    result = await decide();
  });
  return { ms, version: result!.policy.version, allowed: result!.allowed, rules: count };
}

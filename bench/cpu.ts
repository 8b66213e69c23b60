// `npm run bench -- cpu`: the machine's CPU per `oidc` exchange under the `wrangler dev` CLI, split by
// process, for the four Workers of the throughput section (bench/contenders.ts) at one fixed request
// rate. Racing them (the throughput section) swings by ±10% a round on this shared machine; CPU time
// per request at a rate every contender sustains is steadier, and says where the time goes: wrangler's
// Node process, the workerd running its dev proxy and inspector proxy, and the workerd running the
// Worker (with its local KV/D1). At saturation a Worker's throughput is the machine's CPU divided by
// its CPU per request (the load generator's share included), so bare's figure over gatepass's
// estimates the throughput share. Linux only (reads /proc).
import { readFileSync, readdirSync } from "node:fs";
import { load, startContenders, type Contender } from "./contenders";
import { prepareOidcBench } from "./oidc-setup";
import { median } from "./stats";

const RATE = 600; // req/s: below every contender's saturation on the 2-core machine
const SECONDS = 10;
const ROUNDS = 4;
const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ, what /proc/<pid>/stat counts in on Linux

type Role = "node" | "proxy" | "worker" | "other";
const ROLES: Role[] = ["node", "proxy", "worker", "other"];
/** What a round reports: µs of CPU per request by role, the load generator ("client") and the sum. */
const COLUMNS = ["total", "node", "proxy", "worker", "client", "other"] as const;
type Sample = Record<(typeof COLUMNS)[number], number>;

/** CPU seconds each process of a wrangler dev server's process group has used, by role. */
function cpuByRole(groupLeader: number): Map<Role, number> {
  const totals = new Map<Role, number>(ROLES.map((role) => [role, 0]));
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string, cmdline: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // Fields after "(comm) ": state ppid pgrp ... utime (12th) stime (13th).
    const [comm, rest] = [
      stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
      stat.slice(stat.lastIndexOf(")") + 2).split(" "),
    ];
    if (Number(rest[2]) !== groupLeader) continue;
    // The Worker's workerd is the one started with an inspector address; the other runs wrangler's proxies.
    const role: Role =
      comm === "node"
        ? "node"
        : comm === "workerd"
          ? cmdline.includes("--inspector-addr")
            ? "worker"
            : "proxy"
          : "other";
    totals.set(role, totals.get(role)! + (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS_PER_SECOND);
  }
  return totals;
}

const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

async function sample(contender: Contender, tokens: string[]): Promise<Sample> {
  const [before, clientBefore] = [cpuByRole(contender.server.pid), ownCpuSeconds()];
  const result = await load(contender.url, tokens, { seconds: SECONDS, rate: RATE });
  await new Promise((resolve) => setTimeout(resolve, 500)); // deferred work (audit insert) lands in this round
  const [after, clientAfter] = [cpuByRole(contender.server.pid), ownCpuSeconds()];
  if (result.non2xx > 0 || result.errors > 0)
    throw new Error(`${contender.name}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  const perRequest = (seconds: number) => (seconds / result.requests.total) * 1e6;
  const [node, proxy, worker, other] = ROLES.map((role) => perRequest(after.get(role)! - before.get(role)!)) as [
    number,
    number,
    number,
    number,
  ];
  const client = perRequest(clientAfter - clientBefore);
  return { total: node + proxy + worker + other + client, node, proxy, worker, client, other };
}

export async function run(): Promise<void> {
  const bench = await prepareOidcBench(2_000);
  const { contenders, stop } = await startContenders(bench, true);
  try {
    console.log(
      `cpu: machine CPU per oidc exchange under the \`wrangler dev\` CLI at ${RATE} req/s, ${ROUNDS} alternating rounds × ${SECONDS} s, medians, µs per request`,
    );
    for (const contender of contenders) await load(contender.url, bench.tokens, { seconds: SECONDS }); // warm-up
    const samples = new Map(contenders.map((c) => [c.name, [] as Sample[]]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const contender of contenders) samples.get(contender.name)!.push(await sample(contender, bench.tokens));
    }
    const medians = new Map(
      [...samples].map(([name, list]) => [
        name,
        Object.fromEntries(COLUMNS.map((k) => [k, median(list.map((s) => s[k]))])) as Sample,
      ]),
    );
    console.log(`  ${"".padEnd(10)}${COLUMNS.map((k) => k.padStart(8)).join("")}`);
    for (const [name, m] of medians)
      console.log(`  ${name.padEnd(10)}${COLUMNS.map((k) => m[k].toFixed(0).padStart(8)).join("")}`);
    const total = (name: Contender["name"]) => medians.get(name)!.total;
    const share = (a: Contender["name"], b: Contender["name"]) => `${((total(a) / total(b)) * 100).toFixed(0)}%`;
    console.log(
      `  bare / gatepass = ${share("bare", "gatepass")}: the throughput share this predicts at saturation (target ≥ 50%)`,
    );
    console.log(
      `  bare+log / gatepass = ${share("bare+log", "gatepass")}, bare / gp-no-log = ${share("bare", "gp-no-log")}`,
    );
  } finally {
    await stop();
    await bench.close();
  }
}

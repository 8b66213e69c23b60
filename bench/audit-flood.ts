// `npm run bench -- audit-flood`: gatepass's audit queue under a junk-token flood. gatepass runs under
// wrangler's dev server with the DevTools inspector off (one workerd isolate, local D1); the flood goes
// straight to the isolate's workerd, past wrangler's dev proxy (which costs as much CPU per request as
// the Worker itself, and is no part of a deployed gatepass). One autocannon process sends refused
// tokens (malformed, unknown issuer, forged signature) as fast as it can with pipelining, for
// FLOOD_SECONDS, while real CI tokens are exchanged at ISSUE_RATE a second. Every second it samples the
// isolate's audit queue (GET /v1/admin/status) and the resident memory of the Worker's workerd
// (/proc/<pid>/status; Linux only). Afterwards it checks in local D1 that every issuance answered 2xx
// has its audit row, and that each junk request is a row of its own or counted in a summary row.
//
// Phases, each with a fresh gatepass: local D1 as it is; D1 answering each audit insert only
// after SLOW_D1_MS (bench/audit-flood-worker.ts), since local D1 takes rows faster than one client on
// the bench machine can send requests, so only then does the queue reach its caps; a control that
// floods GET /healthz, which is not audited at all, to show how much workerd's memory grows under
// such a flood on its own; and (issue 30) at D1 speeds of 1, 2 and 5 s an insert: a key push flood
// with no credential or a made-up push credential (`admin`), and one valid CI token far over its
// project's rate limit (`ratelimit`, the other issuances being other projects'). AUDIT_FLOOD_PHASES
// (comma-separated: junk, healthz, admin, ratelimit) runs only some of them, AUDIT_FLOOD_D1_MS
// (comma-separated ms) only some D1 speeds.
import autocannon from "autocannon";
import { readFileSync } from "node:fs";
import { wrangler } from "../cli/wrangler";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import {
  AUDIT_JUNK_ROWS_PER_SECOND,
  MAX_AUDIT_QUEUE_BYTES,
  MAX_AUDIT_QUEUE_EVENTS,
  MAX_AUDIT_QUEUED_JUNK_EVENTS,
} from "../src/limits";
import { benchCiIssuer } from "./ci-issuer";
import { isolateOf } from "./isolate";
import { prepareOidcBench, type OidcBench } from "./oidc-setup";
import { startWranglerDev, type WranglerDev } from "../test/support/wrangler-dev";

const FLOOD_SECONDS = Number(process.env.AUDIT_FLOOD_SECONDS ?? 30);
// The isolate, not the client, is what limits the rate here: 16 connections send as many requests as
// 32 × 16 pipelined ones did (2 500–2 900 a second either way), and deep pipelining makes workerd
// serve new connections (issuances, status) only once the flood stops.
const CONNECTIONS = Number(process.env.AUDIT_FLOOD_CONNECTIONS ?? 16);
const PIPELINING = Number(process.env.AUDIT_FLOOD_PIPELINING ?? 1);
const ISSUE_RATE = 20; // verified issuances a second, interleaved with the flood
const TARGET_RATE = 5_000; // junk requests a second the issue asks for
const SLOW_D1_MS = 1_000;
/** D1 speeds the issue-30 floods run at (ms an audit insert). */
const ISSUE_30_D1_MS = (process.env.AUDIT_FLOOD_D1_MS ?? "1000,2000,5000").split(",").map(Number);
const PHASES = new Set((process.env.AUDIT_FLOOD_PHASES ?? "junk,healthz,admin,ratelimit").split(","));
/** A push credential of the right shape that was never created: the attacker's made-up `gpk_…`. */
const MADE_UP_CREDENTIAL = `gpk_${"0123456789abcdef"}_${"ab".repeat(32)}`;
const ADMIN_TOKEN = `bench-admin-${crypto.randomUUID()}`;
const ROUTE = "/v1/credentials/oidc-rp";
const MiB = 2 ** 20;

interface Sample {
  second: number;
  queued: number;
  queuedBytes: number;
  junkQueued: number;
  inFlight: number;
  folded: number;
  overCap: number;
  failures: number;
  rssMb: number;
}

export async function run(): Promise<void> {
  const bench = await prepareOidcBench(2_000);
  try {
    console.log(
      `audit-flood: junk tokens as fast as one client sends them (${CONNECTIONS} connections × ${PIPELINING} pipelined) for ${FLOOD_SECONDS} s, ${ISSUE_RATE} verified issuances a second`,
    );
    console.log(
      `  caps: ${MAX_AUDIT_QUEUE_EVENTS} events and ${MAX_AUDIT_QUEUE_BYTES / MiB} MiB held per isolate, of which junk ${MAX_AUDIT_QUEUED_JUNK_EVENTS} events`,
    );
    console.log(`  junk rate budget: ${AUDIT_JUNK_ROWS_PER_SECOND} rows of their own a second per isolate`);
    if (PHASES.has("junk")) {
      await phase(bench, "junk tokens, local D1", "junk", 0);
      await phase(bench, `junk tokens, D1 answering each audit insert after ${SLOW_D1_MS} ms`, "junk", SLOW_D1_MS);
    }
    if (PHASES.has("healthz")) await phase(bench, "control: GET /healthz (not audited), local D1", "healthz", 0);
    for (const delay of ISSUE_30_D1_MS) {
      if (PHASES.has("admin"))
        await phase(
          bench,
          `key push flood, no credential or a made-up gpk_…, D1 ${delay} ms an insert`,
          "admin",
          delay,
        );
      if (PHASES.has("ratelimit"))
        await phase(bench, `one valid CI token over its rate limit, D1 ${delay} ms an insert`, "ratelimit", delay);
    }
  } finally {
    await bench.close();
  }
}

type Flood = "junk" | "healthz" | "admin" | "ratelimit";

/** What each flood sends: autocannon's url and requests. */
function floodRequests(flood: Flood, bench: OidcBench, base: string): Pick<autocannon.Options, "url" | "requests"> {
  switch (flood) {
    case "junk":
      return {
        url: `${base}${ROUTE}`,
        requests: junkTokens(bench.ciIssuer).map((token) => ({
          method: "POST" as const,
          headers: { authorization: `Bearer ${token}` },
        })),
      };
    case "healthz":
      return { url: `${base}/healthz` };
    case "admin":
      // The attacker picks the path's issuer and the credential id: they must not pass for a real push's.
      return {
        url: `${base}/v1/admin/issuers/ci/jwks`,
        requests: [
          { method: "PUT" as const, body: "{}" },
          { method: "PUT" as const, body: "{}", headers: { authorization: `Bearer ${MADE_UP_CREDENTIAL}` } },
        ],
      };
    case "ratelimit":
      // bench.tokens[0]: a project the interleaved issuances (tokens 20 onwards) never use.
      return {
        url: `${base}${ROUTE}`,
        requests: [{ method: "POST" as const, headers: { authorization: `Bearer ${bench.tokens[0]!}` } }],
      };
  }
}

async function phase(bench: OidcBench, name: string, flood: Flood, d1DelayMs: number): Promise<void> {
  const server = await startWranglerDev({
    script: "bench/audit-flood-worker.ts",
    vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development", AUDIT_FLOOD_D1_DELAY_MS: String(d1DelayMs) }),
    secrets: { ...bench.gatepass.secrets, GATEPASS_ADMIN_TOKEN: ADMIN_TOKEN },
    kv: bench.gatepass.kv,
    inspector: false,
    quiet: !process.env.AUDIT_FLOOD_VERBOSE, // set it to see workerd's own output
  });
  try {
    const isolate = await isolateOf(server);
    const url = `${isolate.url}${ROUTE}`;
    console.log(`\n  ${name} (the Worker's workerd: pid ${isolate.pid}, ${isolate.url})`);

    // Warm-up: issuer keys, policy, JIT; then the baseline memory.
    for (const token of bench.tokens.slice(0, 20)) await issue(url, token);
    const baselineRss = rssMb(isolate.pid);
    const dbBefore = await d1Bytes(server.persistTo);
    const [rowsBefore] = await d1Query(server, "SELECT count(*) AS n FROM audit_events");

    const issued = { ok: [] as string[], failed: 0, latencies: [] as number[] };
    let nextToken = 20;
    const issuances: Promise<void>[] = [];
    const issuer = setInterval(() => {
      const token = bench.tokens[nextToken++ % bench.tokens.length]!;
      issuances.push(
        issue(url, token).then((r) => {
          if (r.ok) issued.ok.push(r.requestId);
          else issued.failed++;
          issued.latencies.push(r.ms);
        }),
      );
    }, 1000 / ISSUE_RATE);

    const samples: Sample[] = [];
    const started = Date.now();
    const sampler = setInterval(() => {
      const rss = rssMb(isolate.pid);
      void adminStatus(isolate.url).then(
        (audit) =>
          samples.push({
            second: (Date.now() - started) / 1000,
            queued: audit.queued_events,
            queuedBytes: audit.queued_bytes,
            junkQueued: audit.queued_junk_events,
            inFlight: audit.inserts_in_flight,
            folded: audit.folded_refusals_this_isolate,
            overCap: audit.logged_over_cap_this_isolate,
            failures: audit.write_failures_this_isolate,
            rssMb: Math.max(rss, rssMb(isolate.pid)),
          }),
        () => {},
      );
    }, 1_000);

    // In a worker thread, so that this thread's sampling and issuances are not held up by the flood.
    const result = await autocannon({
      connections: CONNECTIONS,
      pipelining: PIPELINING,
      duration: FLOOD_SECONDS,
      workers: 1,
      ...floodRequests(flood, bench, isolate.url),
    });
    clearInterval(issuer);
    clearInterval(sampler);
    await Promise.all(issuances);

    // Let the queue drain, then read D1. Each status request is audited too, so poll slowly enough for
    // the previous one's event to be written (a linger and one insert, over a second with slow D1).
    const drainStarted = Date.now();
    let after = await adminStatus(isolate.url);
    while ((after.queued_events > 0 || after.folded_refusals_unwritten > 0) && Date.now() - drainStarted < 60_000) {
      await new Promise((resolve) => setTimeout(resolve, 2 * (d1DelayMs + 500)));
      after = await adminStatus(isolate.url);
    }
    const drainMs = Date.now() - drainStarted;
    const d1 = (sql: string) => d1Query(server, sql);
    const [found] = await d1(
      `SELECT count(*) AS n FROM audit_events WHERE request_id IN (SELECT value FROM json_each('${JSON.stringify(issued.ok)}'))`,
    );
    const [junkRows] = await d1(
      `SELECT count(*) AS rows, coalesce(sum(folded_count IS NOT NULL), 0) AS summaries, coalesce(sum(coalesce(folded_count, 1)), 0) AS requests FROM audit_events WHERE issuer IS NULL AND route LIKE 'POST %'`,
    );
    const codes = await d1(
      "SELECT error_code, sum(folded_count) AS folded, count(*) AS summaries FROM audit_events WHERE folded_count IS NOT NULL GROUP BY error_code ORDER BY error_code",
    );
    const byCode = await d1(
      "SELECT coalesce(error_code, '-') AS code, count(*) AS rows, sum(folded_count IS NOT NULL) AS summaries, sum(coalesce(folded_count, 1)) AS requests, sum(issuer IS NOT NULL OR actor IS NOT NULL) AS attributed FROM audit_events GROUP BY error_code ORDER BY rows DESC",
    );
    const [rowsAfter] = await d1("SELECT count(*) AS n FROM audit_events");
    const dbAfter = await d1Bytes(server.persistTo);

    console.log(
      `    ${"s".padStart(4)} ${"queued".padStart(7)} ${"of junk".padStart(8)} ${"KiB".padStart(6)} ${"ins".padStart(4)} ${"folded".padStart(8)} ${"over cap".padStart(9)} ${"failed".padStart(7)} ${"RSS MB".padStart(7)}`,
    );
    for (const s of samples.sort((a, b) => a.second - b.second)) {
      console.log(
        `    ${s.second.toFixed(1).padStart(4)} ${String(s.queued).padStart(7)} ${String(s.junkQueued).padStart(8)} ${(s.queuedBytes / 1024).toFixed(0).padStart(6)} ${String(s.inFlight).padStart(4)} ${String(s.folded).padStart(8)} ${String(s.overCap).padStart(9)} ${String(s.failures).padStart(7)} ${s.rssMb.toFixed(0).padStart(7)}`,
      );
    }
    const max = (pick: (s: Sample) => number) => Math.max(...samples.map(pick));
    const rate = result.requests.total / FLOOD_SECONDS;
    const asked =
      flood === "junk" ? ` (${TARGET_RATE} asked: ${rate >= TARGET_RATE ? "met" : "not reached on this machine"})` : "";
    console.log(
      `    ${flood}: ${result.requests.total} answered, ${rate.toFixed(0)} req/s on average, ${result.requests.min}–${result.requests.max} a second${asked}; non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}`,
    );
    console.log(
      `    issuances: ${issued.ok.length} answered 2xx, ${issued.failed} not; latency p50 ${percentile(issued.latencies, 0.5).toFixed(0)} ms, p99 ${percentile(issued.latencies, 0.99).toFixed(0)} ms`,
    );
    console.log(`    worst queue: ${max((s) => s.queued)} events, ${(max((s) => s.queuedBytes) / MiB).toFixed(2)} MiB`);
    console.log(
      `    workerd RSS: ${baselineRss.toFixed(0)} MB after the warm-up, worst ${max((s) => s.rssMb).toFixed(0)} MB during the flood (+${(max((s) => s.rssMb) - baselineRss).toFixed(0)} MB, ${(((max((s) => s.rssMb) - baselineRss) * 1024) / result.requests.total).toFixed(1)} KiB a request), ${rssMb(isolate.pid).toFixed(0)} MB after`,
    );
    console.log(
      `    drained ${drainMs} ms after the flood (${after.queued_events} events left, ${after.folded_refusals_unwritten} folded refusals unwritten); ${after.folded_refusals_this_isolate} refusals folded, ${after.logged_over_cap_this_isolate} events logged over the cap, ${after.write_failures_this_isolate} insert failures`,
    );
    console.log(
      `    D1: ${found!.n} of ${issued.ok.length} issuances answered 2xx have their audit row: ${found!.n === issued.ok.length ? "OK" : "ROWS MISSING"}`,
    );
    console.log(
      `    D1: junk as ${junkRows!.rows} rows (${junkRows!.summaries} of them summaries) standing for ${junkRows!.requests} requests; autocannon counted ${result.requests.total} answered (not those in flight when it stopped)`,
    );
    for (const row of codes)
      console.log(`      folded ${String(row.error_code).padEnd(22)} ${row.folded} in ${row.summaries} summary rows`);
    for (const row of byCode)
      console.log(
        `      rows ${String(row.code).padEnd(24)} ${String(row.rows).padStart(6)} rows (${row.summaries} summaries, ${row.attributed} with a verified issuer or actor) for ${row.requests} requests`,
      );
    const rows = Number(rowsAfter!.n) - Number(rowsBefore!.n);
    console.log(
      `    D1 grew ${((dbAfter - dbBefore) / 1024).toFixed(0)} KiB for ${rows} rows (${rows > 0 ? ((dbAfter - dbBefore) / rows).toFixed(0) : "-"} bytes a row, indexes included), ${((dbAfter - dbBefore) / FLOOD_SECONDS / 1024).toFixed(1)} KiB a second of flood`,
    );
    console.log(
      `    queue bound: worst ${max((s) => s.queued)} of ${MAX_AUDIT_QUEUE_EVENTS} events: ${max((s) => s.queued) <= MAX_AUDIT_QUEUE_EVENTS ? "OK" : "OVER"}`,
    );
  } finally {
    await server.stop();
  }
}

/** Refused tokens: not a JWT, an unknown issuer's, and the configured issuer's name with another key's signature. */
function junkTokens(ciIssuer: string): string[] {
  const [unknownIssuer] = benchCiIssuer("https://unknown-issuer.example").tokens(1);
  const [forged] = benchCiIssuer(ciIssuer).tokens(1);
  return ["not-a-jwt", unknownIssuer!, forged!];
}

async function issue(url: string, token: string): Promise<{ ok: boolean; requestId: string; ms: number }> {
  const started = performance.now();
  try {
    const res = await fetch(url, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    return { ok: res.ok, requestId: res.headers.get("X-Request-Id") ?? "", ms: performance.now() - started };
  } catch {
    return { ok: false, requestId: "", ms: performance.now() - started };
  }
}

/** The fields of admin status's `audit` this bench reads. */
interface AuditStatus {
  queued_events: number;
  queued_bytes: number;
  queued_junk_events: number;
  inserts_in_flight: number;
  folded_refusals_this_isolate: number;
  folded_refusals_unwritten: number;
  logged_over_cap_this_isolate: number;
  write_failures_this_isolate: number;
}

async function adminStatus(base: string): Promise<AuditStatus> {
  const res = await fetch(`${base}/v1/admin/status`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  return ((await res.json()) as { audit: AuditStatus }).audit;
}

/** Bytes of local D1's SQLite files (database and write-ahead log). */
async function d1Bytes(persistTo: string): Promise<number> {
  const dir = path.join(persistTo, "v3", "d1", "miniflare-D1DatabaseObject");
  const names = await readdir(dir).catch(() => [] as string[]);
  const sizes = await Promise.all(
    names.filter((name) => name.includes(".sqlite")).map((name) => stat(path.join(dir, name)).then((s) => s.size)),
  );
  return sizes.reduce((sum, size) => sum + size, 0);
}

async function d1Query(server: WranglerDev, sql: string): Promise<Record<string, number | string>[]> {
  const out = await wrangler([
    "d1",
    "execute",
    "DB",
    "--json",
    "--local",
    "--persist-to",
    server.persistTo,
    "--command",
    sql,
  ]);
  return (JSON.parse(out) as { results: Record<string, number | string>[] }[])[0]!.results;
}

function rssMb(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return Number.NaN; // the process is gone: the phase's checks say what was lost
  }
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

// Worker entry: HTTP via the Hono app, and the cron that refreshes issuer keys ahead of expiry,
// warns when a pushed issuer's keys were not pushed for too long, and prunes audit events past their
// retention and use counters of expired jobs.

import { createApp } from "./app";
import { pruneSeenIdentities } from "./audit/seen-identities";
import { pruneAuditEvents } from "./audit/audit-writer";
import { logConfigRefusal, readConfig, type Env } from "./config";
import { isGatepassError } from "./errors";
import { defaultDeps, nowSeconds } from "./deps";
import { MAX_SEEN_IDENTITIES } from "./limits";
import { log } from "./log";
import { pruneUseCounters } from "./exchange/use-limits";
import { createServices } from "./services";
import { stalePushedIssuers } from "./issuer-keys/stored-key-set";

const services = createServices(defaultDeps);
const app = createApp(defaultDeps, services);

export default {
  fetch: app.fetch,
  async scheduled(_controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
    // A misconfigured gatepass does nothing, its cron included; the run fails with the reason logged.
    try {
      readConfig(env);
    } catch (err) {
      if (isGatepassError(err) && err.code === "config_invalid") logConfigRefusal(err);
      throw err;
    }
    // The jobs are independent: one failing must not stop another.
    const results = await Promise.allSettled([
      (async () => {
        // Issuers come from the active policy; the HTTP path shares this isolate's key cache.
        const policy = await services.policies.current(env, (promise) => ctx.waitUntil(promise));
        await services.verifier.refresh(policy.issuers, env);
      })(),
      (async () => {
        // A push job that stopped (expired credential, broken runner) shows here before a rotation
        // makes every job fail with key_unknown.
        const policy = await services.policies.current(env, (promise) => ctx.waitUntil(promise));
        const pushed = policy.issuers.filter((issuer) => issuer.keys.source === "pushed");
        const warnAfter = readConfig(env).pushedKeysWarnAfterSeconds;
        for (const stale of stalePushedIssuers(await services.verifier.keyStatus(pushed, env), warnAfter)) {
          log("warn", "pushed_keys_stale", { ...stale, warn_after_seconds: warnAfter });
        }
      })(),
      (async () => {
        const removed = await pruneAuditEvents(env, readConfig(env).auditRetentionDays, defaultDeps.now());
        const counters = await pruneUseCounters(env, nowSeconds(defaultDeps));
        const seen = await pruneSeenIdentities(
          env,
          readConfig(env).auditRetentionDays,
          defaultDeps.now(),
          MAX_SEEN_IDENTITIES,
        );
        log("info", "storage_pruned", { audit_events: removed, use_counters: counters, seen_identities: seen });
      })(),
    ]);
    for (const result of results) {
      if (result.status === "rejected") log("error", "scheduled_job_failed", { error: result.reason });
    }
  },
} satisfies ExportedHandler<Env>;

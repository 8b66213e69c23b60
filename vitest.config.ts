import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig, type Plugin } from "vitest/config";
// With an extension (.js resolves to the .ts file): Vite warns on every run about an extensionless import in a config.
import ProgressReporter from "./test/support/progress-reporter.js";
import { QuickThenSlowestSequencer } from "./test/support/sequencer.js";
import { wranglerConfigForTests } from "./test/support/wrangler-config.js";

/** Mirrors wrangler.toml's `[[rules]] type = "Text"` for .yml imports, so tests bundle like wrangler. */
const ymlAsText: Plugin = {
  name: "yml-as-text",
  transform(code, id) {
    return id.endsWith(".yml") ? { code: `export default ${JSON.stringify(code)};`, map: null } : undefined;
  },
};

// Two projects: "worker" runs inside workerd with real KV/D1 bindings (Cloudflare's Vitest
// integration); "node" runs the CLI and end-to-end tests that drive wrangler from Node.
// docs/testing.md: the tiers, how to run parts, timings.
export default defineConfig(async () => {
  const migrations = await readD1Migrations("migrations");
  const wranglerConfig = wranglerConfigForTests(import.meta.dirname);
  return {
    test: {
      // Request logs are noise when a test passes; keep them for failing tests.
      silent: "passed-only" as const,
      // Both projects share these workers (Vitest's default on two cores is one: every file in turn).
      // Three on two cores: most Node files wait on the wrangler, workerd and shell processes they
      // start, or on timers, so a third file fills the idle CPU (measured: 175 s with two, 142-150 s
      // with three, and four made a stop deadline miss). docs/testing.md has the figures.
      maxWorkers: 3,
      sequence: { sequencer: QuickThenSlowestSequencer },
      // Outside a terminal, a line naming the files under way after 15 s without output.
      reporters: ["default", new ProgressReporter()],
      projects: [
        {
          plugins: [
            ymlAsText,
            cloudflareTest(({ inject }) => ({
              main: "./src/index.ts",
              // wrangler.toml's settings without the .dev.vars beside it (see wrangler-config.ts).
              wrangler: { configPath: wranglerConfig },
              // Tests never reach a Cloudflare account.
              remoteBindings: false,
              miniflare: {
                bindings: {
                  TEST_MIGRATIONS: migrations,
                  STANDIN_URL: inject("standinUrl"),
                  GATEPASS_ADMIN_TOKEN: "test-admin-token",
                  // What `npm run dev` puts in .dev.vars: wrangler.toml's loopback issuer needs it.
                  GATEPASS_ENV: "development",
                  // Not the developer's .dev.vars secret: tests see the same keys on every machine (empty
                  // selects a local run's ephemeral ES256 + RS256 set).
                  GATEPASS_SIGNING_KEYS: "",
                },
              },
            })),
          ],
          test: {
            name: "worker",
            include: ["test/worker/**/*.test.ts"],
            // A hang guard, not a speed check: the policy index's fuzz test takes 3 s idle and overran
            // Vitest's default 5 s on a fresh clone with three files running on two cores.
            testTimeout: 20_000,
            setupFiles: ["test/worker/setup.ts"],
            globalSetup: ["test/support/global-setup.ts"],
          },
        },
        {
          test: {
            name: "node",
            include: ["test/node/**/*.test.ts"],
            environment: "node",
            globalSetup: ["test/support/node-global-setup.ts"],
            // Hang guards, not speed checks: on a loaded two-core machine a 16 s CLI test has taken over 60 s.
            testTimeout: 120_000,
            hookTimeout: 120_000,
          },
        },
      ],
    },
  };
});

import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig, type Plugin } from "vitest/config";

/** Mirrors wrangler.toml's `[[rules]] type = "Text"` for .yml imports, so tests bundle like wrangler. */
const ymlAsText: Plugin = {
  name: "yml-as-text",
  transform(code, id) {
    return id.endsWith(".yml") ? { code: `export default ${JSON.stringify(code)};`, map: null } : undefined;
  },
};

// Two projects: "worker" runs inside workerd with real KV/D1 bindings (Cloudflare's Vitest
// integration); "node" runs the CLI and end-to-end tests that drive wrangler from Node.
export default defineConfig(async () => {
  const migrations = await readD1Migrations("migrations");
  return {
    test: {
      // Request logs are noise when a test passes; keep them for failing tests.
      silent: "passed-only" as const,
      projects: [
        {
          plugins: [
            ymlAsText,
            cloudflareTest(({ inject }) => ({
              main: "./src/index.ts",
              wrangler: { configPath: "./wrangler.toml" },
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
            testTimeout: 60_000,
            hookTimeout: 120_000,
          },
        },
      ],
    },
  };
});

// The wrangler config the Workers pool reads: wrangler.toml's settings, written as JSON into a
// directory that never holds a .dev.vars. Wrangler loads the .dev.vars beside a config (there is no
// option to skip it: unstable_getMiniflareWorkerOptions passes no envFiles, and the pool passes no
// silent flag), so with `npm run dev`'s .dev.vars in the repository every test file printed "Using
// secrets defined in .dev.vars" and its Worker got the developer's local secrets for every binding
// vitest.config.ts does not set. The tests supply their own bindings; this copy keeps them the only ones.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { experimental_readRawConfig } from "wrangler";

/** Writes the copy under node_modules/.cache and returns its path. */
export function wranglerConfigForTests(root: string): string {
  const { rawConfig } = experimental_readRawConfig({ config: path.join(root, "wrangler.toml") });
  const config = {
    ...rawConfig,
    // Paths in a config are relative to its own directory.
    ...(rawConfig.main ? { main: path.resolve(root, rawConfig.main) } : {}),
    d1_databases: rawConfig.d1_databases?.map((db: { migrations_dir?: string }) =>
      db.migrations_dir ? { ...db, migrations_dir: path.resolve(root, db.migrations_dir) } : db,
    ),
  };
  const dir = path.join(root, "node_modules/.cache/gatepass-tests");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "wrangler.json");
  // Written whole and renamed, so a run starting alongside never reads half a file.
  const partial = `${file}.${process.pid}`;
  writeFileSync(partial, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(partial, file);
  return file;
}

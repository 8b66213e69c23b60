// First steps for local storage: a storage command run before the local D1 database exists, or before
// its migrations ran, says in one line what to run first, instead of SQLite's "no such table" inside
// wrangler's output, and (checked before anything runs) without creating an empty database.
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { targetFlags, type WranglerTarget } from "./wrangler";

/** Where wrangler and Miniflare keep local D1 databases: `<state>/v3/d1/miniflare-D1DatabaseObject/<id>.sqlite`. */
function localD1Dir(target: WranglerTarget): string {
  const state = target.persistTo ?? path.join(path.dirname(target.config ?? "wrangler.toml"), ".wrangler", "state");
  return path.join(state, "v3", "d1", "miniflare-D1DatabaseObject");
}

/** The line that says what to run first. */
export function firstStepsMessage(target: WranglerTarget): string {
  const flags = targetFlags({ ...target, remote: false }).join(" ");
  return (
    `local storage in ${path.dirname(path.dirname(path.dirname(localD1Dir(target))))} is not set up yet (no D1 ` +
    `database with gatepass's tables): run \`npx wrangler d1 migrations apply DB ${flags}\` first (\`npx gatepass ` +
    `dev\` does it when it starts)`
  );
}

/** Refuses a local target whose D1 database does not exist yet. */
export function requireLocalState(target: WranglerTarget): void {
  if (target.remote) return;
  const dir = localD1Dir(target);
  const databases = existsSync(dir)
    ? readdirSync(dir).filter((name) => name.endsWith(".sqlite") && name !== "metadata.sqlite")
    : [];
  if (databases.length === 0) throw new Error(firstStepsMessage(target));
}

/** An error from a local database whose migrations have not run, as the one line that says so; others as they are. */
export function explainMissingTables(error: unknown, target: WranglerTarget): unknown {
  if (target.remote || !(error instanceof Error) || !/no such table: \w+/.test(error.message)) return error;
  return new Error(firstStepsMessage(target));
}

// A copy of the repository for tests that run `gatepass dev` or `npm run dev` as a developer would:
// they write .dev.vars and .wrangler/ state in their working directory, which must never be the
// developer's own. node_modules is linked, not copied.
import { cp, mkdtemp, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");
/** What `gatepass dev` needs of the repository: with dist/ (the built CLI, test/support/node-global-setup.ts
 *  builds it) and the sources' own mtimes, cli/gatepass.mjs finds its build current and does not rebuild. */
const COPIED = [
  "cli",
  "dist",
  "migrations",
  "policies",
  "scripts",
  "src",
  "templates",
  "package.json",
  "tsconfig.json",
  "wrangler.toml",
];

/** Makes the copy in a new temporary directory (the caller removes it) and returns its path. */
export async function copyRepository(prefix: string): Promise<string> {
  const copy = await mkdtemp(path.join(tmpdir(), prefix));
  for (const entry of COPIED)
    await cp(path.join(ROOT, entry), path.join(copy, entry), { recursive: true, preserveTimestamps: true });
  await symlink(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"));
  return copy;
}

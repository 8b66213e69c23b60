#!/usr/bin/env node
// `npx gatepass ...`: runs the CLI built into dist/cli/ by scripts/build-cli.mjs (at `npm install`).
// Before it does, it checks that every source file the build holds still has the size and mtime the
// build recorded (a stat per file, about a millisecond in all); when one differs, or a build is
// missing, it rebuilds first (esbuild, well under a second), so an edited checkout never runs an
// old bundle.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function freshBuild() {
  let current;
  try {
    current = JSON.parse(readFileSync(path.join(root, "dist", "cli", "current.json"), "utf8"));
  } catch {
    return undefined;
  }
  for (const [file, [size, mtimeMs]] of Object.entries(current.sources)) {
    try {
      const stat = statSync(path.join(root, file));
      if (stat.size !== size || stat.mtimeMs !== mtimeMs) return undefined;
    } catch {
      return undefined;
    }
  }
  return path.join(root, "dist", "cli", current.id, "main.mjs");
}

const entry = freshBuild() ?? (await (await import("../scripts/build-cli.mjs")).buildCli());
await import(pathToFileURL(entry).href);

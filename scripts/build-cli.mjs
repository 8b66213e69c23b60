// Builds the CLI (cli/main.ts and what it imports from cli/ and src/) into dist/cli/ with esbuild, so
// `gatepass` runs plain JavaScript instead of compiling TypeScript through tsx on every start.
//
// Each command group is its own chunk (cli/run.ts imports it with a dynamic import()), and packages
// stay in node_modules (wrangler, miniflare, jose, yaml load only when a command imports them).
//
// A build goes into dist/cli/<hash of its sources>/ and dist/cli/current.json names it, with the
// size and mtime of every source file the bundle holds: cli/gatepass.mjs compares them on each start
// and rebuilds when one differs, so an edited checkout never runs an old bundle. current.json is
// written by rename, so concurrent builds (parallel tests) each see a complete build.
//
// Run by `npm install`/`npm ci` (the `prepare` script), by the test setup, and by cli/gatepass.mjs.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const OUT = path.join(ROOT, "dist", "cli");
const CURRENT = path.join(OUT, "current.json");
/** Older builds are removed once they have been superseded this long (a running command may still load a chunk from one). */
const KEEP_SUPERSEDED_MS = 10 * 60 * 1000;

/** esbuild options of the build (exported for the test that checks what each entry loads). */
export function options(outdir, write) {
  return {
    absWorkingDir: ROOT,
    entryPoints: { main: "cli/main.ts" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // Pure-JavaScript dependencies are bundled: tree-shaken, and one file to read instead of dozens to resolve.
    // wrangler (and what it brings) stays a package, loaded only by the commands that run it.
    external: ["wrangler", "miniflare", "esbuild"],
    outdir,
    write,
    metafile: true,
    logLevel: "error",
    // A chunk's name says which module it starts with, for a reader of a stack trace.
    chunkNames: "[name]-[hash]",
    // .mjs: Node knows each file is an ES module without looking for the nearest package.json.
    outExtension: { ".js": ".mjs" },
    // yaml's Node build is CommonJS and requires Node's built-ins; an ES module has no `require` of its own.
    banner: {
      js: 'import { createRequire as __gatepassCreateRequire } from "node:module"; const require = __gatepassCreateRequire(import.meta.url);',
    },
  };
}

/** Builds when the recorded sources differ from the checkout's; returns the entry point's path. */
export async function buildCli() {
  const esbuild = await import("esbuild");
  // First pass without writing: which sources the bundle holds, and their hash.
  const probe = await esbuild.build(options(path.join(OUT, "probe"), false));
  const inputs = Object.keys(probe.metafile.inputs)
    .filter((file) => !file.startsWith("node_modules/"))
    .sort();
  const hash = createHash("sha256");
  hash.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const file of inputs) hash.update(`${file}\0`).update(readFileSync(path.join(ROOT, file)));
  const id = hash.digest("hex").slice(0, 16);
  const dir = path.join(OUT, id);
  const built = readDir(dir);
  if (!built.includes("main.mjs")) {
    const tmp = `${dir}.tmp-${process.pid}`;
    for (const file of probe.outputFiles) {
      const target = path.join(tmp, path.relative(path.join(OUT, "probe"), file.path));
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, file.contents);
    }
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process finished the same build first
    }
  }
  const sources = Object.fromEntries(
    inputs.map((file) => {
      const stat = statSync(path.join(ROOT, file));
      return [file, [stat.size, stat.mtimeMs]];
    }),
  );
  const tmpCurrent = `${CURRENT}.tmp-${process.pid}`;
  writeFileSync(tmpCurrent, `${JSON.stringify({ id, sources })}\n`);
  renameSync(tmpCurrent, CURRENT);
  pruneSuperseded(id);
  return path.join(dir, "main.mjs");
}

function readDir(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function pruneSuperseded(current) {
  const now = Date.now();
  for (const name of readDir(OUT)) {
    if (name === current || name === "current.json" || name.startsWith("current.json.tmp")) continue;
    const full = path.join(OUT, name);
    try {
      if (now - statSync(full).mtimeMs > KEEP_SUPERSEDED_MS) rmSync(full, { recursive: true, force: true });
    } catch {
      // removed meanwhile by another build
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const entry = await buildCli();
  process.stdout.write(`gatepass CLI built: ${path.relative(ROOT, entry)}\n`);
}

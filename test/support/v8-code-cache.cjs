// Preloaded (NODE_OPTIONS=--require) into the processes the Node tests start: keeps V8's compiled code
// for the big CommonJS bundles (wrangler's 12 MB cli.js, miniflare) between processes, in
// node_modules/.cache/gatepass-v8. The Node tests start about 120 wrangler processes a run, and each
// spent 0.6 s of CPU compiling wrangler before doing anything; with the cache, about 0.3 s
// (Node 22's NODE_COMPILE_CACHE does this natively; the project supports Node 20).
//
// Only Module.prototype._compile changes, and only for files over 1 MB: the module is compiled with
// the cached code (V8 checks it against the source and ignores a stale one) and run exactly as Node
// runs it, with dynamic import() resolved from the module's own file.
"use strict";
const { createHash } = require("node:crypto");
const { mkdirSync, readFileSync, renameSync, writeFileSync } = require("node:fs");
const Module = require("node:module");
const path = require("node:path");
const vm = require("node:vm");

const MIN_SIZE = 1024 * 1024;
const CACHE_DIR = path.resolve(__dirname, "../../node_modules/.cache/gatepass-v8");
const compile = Module.prototype._compile;

Module.prototype._compile = function (content, filename) {
  if (content.length < MIN_SIZE || !vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER) return compile.call(this, content, filename);
  const file = path.join(CACHE_DIR, createHash("sha256").update(filename).update("\0").update(content).digest("hex").slice(0, 32));
  let cachedData;
  try {
    cachedData = readFileSync(file);
  } catch {
    // not cached yet
  }
  const script = new vm.Script(Module.wrap(content), {
    filename,
    cachedData,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  // Written at exit, so it holds the functions this run compiled lazily too; renamed whole.
  if (cachedData === undefined || script.cachedDataRejected) process.once("exit", () => save(file, script));
  const require = makeRequire(this);
  return script.runInThisContext({ displayErrors: true }).call(this.exports, this.exports, require, this, filename, path.dirname(filename));
};

function makeRequire(module) {
  const require = (id) => module.require(id);
  require.resolve = (request, options) => Module._resolveFilename(request, module, false, options);
  require.resolve.paths = (request) => Module._resolveLookupPaths(request, module);
  require.main = process.mainModule;
  require.extensions = Module._extensions;
  require.cache = Module._cache;
  return require;
}

function save(file, script) {
  try {
    mkdirSync(CACHE_DIR, { recursive: true });
    const partial = `${file}.${process.pid}`;
    writeFileSync(partial, script.createCachedData());
    renameSync(partial, file);
  } catch {
    // a cache only: the next process compiles again
  }
}

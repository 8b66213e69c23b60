// `npm run check-removal [-- [--list] src/verify ...]`: proves that every check in src/ has a test
// that fails when the check is removed. Each mutant disables one check — a `throw` becomes `void` (the
// error is built and dropped), a policy-validation guard `if (cond) return fail(...)` becomes
// `if (false)` — then the worker tests run against it. A mutant no test notices is a check without a
// test. `--list` prints the mutants (and the skipped ones, with why) without running anything.
// About 20 s per mutant (the tests nearest the file first, the whole worker project only if they
// pass); the whole of src/ takes a little over an hour. Not part of `npm test`.
//
// It edits src/ in place, one line at a time, and restores it (also on Ctrl-C); it refuses to start
// when src/ has uncommitted changes, so `git checkout src` is always a safe way back.

import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

interface Mutant {
  file: string;
  line: number;
  original: string;
  mutated: string;
}

/** Mutants no test can kill: checks that cannot be reached, kept to narrow a type or fail closed. */
const EQUIVALENT: { file: string; contains: string; why: string }[] = [
  {
    file: "src/routes/credentials-endpoint.ts",
    contains: 'type !== "gcp") throw new GatepassError("format_unsupported")',
    why: "assertFormatFor admits gcloud for gcp only; narrows the type",
  },
  {
    file: "src/exchange/exchange-flow.ts",
    contains: "if (!target) throw denialError",
    why: "evaluate() refuses unknown targets first; narrows the type",
  },
  {
    file: "src/routes/sapro-endpoint.ts",
    contains: 'kind !== "access_token") throw',
    why: "a gcp target without audience always yields an access token; narrows the type",
  },
  {
    file: "src/routes/google-sts-endpoint.ts",
    contains: 'kind !== "access_token") throw',
    why: "the route admits gcp targets only; narrows the type",
  },
  {
    file: "src/issuer-keys/key-set-download.ts",
    contains: 'throw new Error("pushed keys are never fetched")',
    why: "callers never fetch pushed issuers; narrows the type",
  },
  {
    file: "src/routes/token-exchange-endpoint.ts",
    contains: 'throw new GatepassError("format_unsupported");',
    why: "aws targets are refused before the exchange; keeps the switch exhaustive",
  },
];

/** The tests nearest each part of src/; the whole worker project runs when these pass. */
const NEAREST_TESTS: Record<string, string[]> = {
  verify: ["test/worker/verify", "test/worker/fuzz"],
  "issuer-keys": ["test/worker/verify", "test/worker/admin", "test/worker/fuzz"],
  policy: ["test/worker/policy", "test/worker/fuzz", "test/worker/exchange/use-limits.test.ts"],
  providers: ["test/worker/exchange"],
  format: ["test/worker/exchange"],
  mint: ["test/worker/exchange"],
  routes: ["test/worker/exchange", "test/worker/verify/routes.test.ts", "test/worker/audit"],
  audit: ["test/worker/audit", "test/worker/faults.test.ts"],
  http: ["test/worker/http", "test/worker/exchange/upstream.test.ts", "test/worker/audit/admin.test.ts"],
};

const RETHROW = /\bthrow [A-Za-z_$][\w$]*;/;
const FAIL_GUARD = /^\s*if \((.*)\) (?:return )?fail\(/;

function mutantsOf(file: string, text: string): Mutant[] {
  const mutants: Mutant[] = [];
  text.split("\n").forEach((original, index) => {
    const code = original.trim();
    if (code.startsWith("//") || code.startsWith("*") || code.startsWith("/*")) return;
    const line = index + 1;
    const thrown = /\bthrow /.exec(original);
    if (thrown && !RETHROW.test(original)) {
      mutants.push({
        file,
        line,
        original,
        mutated: `${original.slice(0, thrown.index)}void ${original.slice(thrown.index + 6)}`,
      });
      return;
    }
    const guard = FAIL_GUARD.exec(original);
    if (guard && balanced(guard[1]!)) {
      mutants.push({ file, line, original, mutated: original.replace(`if (${guard[1]})`, "if (false)") });
    }
  });
  return mutants;
}

function whyEquivalent(mutant: Mutant): string | undefined {
  return EQUIVALENT.find((e) => e.file === mutant.file && mutant.original.includes(e.contains))?.why;
}

/** Whether a condition captured up to the last `) fail(` is one parenthesised expression. */
function balanced(condition: string): boolean {
  let depth = 0;
  for (const char of condition) {
    if (char === "(") depth++;
    else if (char === ")" && --depth < 0) return false;
  }
  return depth === 0;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(path) : entry.name.endsWith(".ts") ? [path] : [];
  });
}

function testsPass(paths: string[]): boolean {
  const run = spawnSync("npx", ["vitest", "run", "--project", "worker", "--bail=1", ...paths], { stdio: "ignore" });
  return run.status === 0;
}

function main(args: string[]): number {
  const listOnly = args.includes("--list");
  const prefixes = args.filter((arg) => arg !== "--list");
  if (execFileSync("git", ["status", "--porcelain", "src"], { encoding: "utf8" }).trim() !== "") {
    console.error("src/ has uncommitted changes; commit or stash them first (this script edits src/ and restores it).");
    return 2;
  }
  const files = sourceFiles("src")
    .map((path) => relative(".", path))
    .filter((file) => prefixes.length === 0 || prefixes.some((prefix) => file.startsWith(prefix)))
    .sort();
  const all = files.flatMap((file) => mutantsOf(file, readFileSync(file, "utf8")));
  const mutants = all.filter((mutant) => whyEquivalent(mutant) === undefined);
  console.log(
    `${all.length} checks in ${files.length} files; ${all.length - mutants.length} known to be unreachable are skipped.`,
  );
  if (listOnly) {
    for (const mutant of all) {
      const why = whyEquivalent(mutant);
      console.log(`${mutant.file}:${mutant.line}: ${why === undefined ? mutant.mutated.trim() : `skipped: ${why}`}`);
    }
    return 0;
  }

  let restore: (() => void) | undefined;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      restore?.();
      process.exit(130);
    });
  }
  const survivors: Mutant[] = [];
  for (const [index, mutant] of mutants.entries()) {
    const text = readFileSync(mutant.file, "utf8");
    const lines = text.split("\n");
    lines[mutant.line - 1] = mutant.mutated;
    restore = () => writeFileSync(mutant.file, text);
    writeFileSync(mutant.file, lines.join("\n"));
    let survived: boolean;
    try {
      const nearest = NEAREST_TESTS[mutant.file.split("/")[1]!];
      survived = (nearest === undefined || testsPass(nearest)) && testsPass([]);
    } finally {
      restore();
      restore = undefined;
    }
    console.log(
      `${String(index + 1).padStart(4)}/${mutants.length} ${survived ? "SURVIVED" : "killed  "} ${mutant.file}:${mutant.line}`,
    );
    if (survived) survivors.push(mutant);
  }
  console.log(`\n${mutants.length - survivors.length} of ${mutants.length} removed checks made a test fail.`);
  for (const mutant of survivors)
    console.log(`no test notices removing ${mutant.file}:${mutant.line}: ${mutant.original.trim()}`);
  return survivors.length === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));

// The Worker's and the CLI's modules import each other without cycles, type-only imports included.
// In a cycle of value imports, which module finishes evaluating first depends on which one something
// imports first: app.ts once imported the OAuth error module, which imported app.ts back, so a test
// importing the token endpoint before the app found the routes it mounts still undefined. Type-only
// imports are erased at run time, but a cycle through them still ties modules into one knot a
// reader cannot take apart (routes importing AppEnv from the app that mounts them): shared types
// live in leaf modules (src/http/app-env.ts, src/providers/provider-context.ts).
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");

function modulesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const at = path.join(dir, entry);
    if (statSync(at).isDirectory()) return modulesUnder(at);
    return at.endsWith(".ts") && !at.endsWith(".d.ts") ? [at] : [];
  });
}

/** The relative modules a file imports or re-exports, type-only ones included, and those it loads with import(). */
function imports(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022);
  const specifiers: string[] = [];
  for (const statement of source.statements) {
    if ((ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) && statement.moduleSpecifier) {
      specifiers.push((statement.moduleSpecifier as ts.StringLiteral).text);
    }
  }
  const visit = (node: ts.Node): void => {
    if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      specifiers.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specifiers
    .filter((s) => s.startsWith("."))
    .map((s) => path.resolve(path.dirname(file), /\.(ts|js|mjs)$/.test(s) ? s.replace(/\.js$/, ".ts") : `${s}.ts`));
}

/** Every cycle a depth-first walk meets, each as the chain of files that closes it. */
function importCycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const chain: string[] = [];
  const cycles: string[][] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    chain.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") cycles.push([...chain.slice(chain.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    chain.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}

describe("module imports", () => {
  it.each(["src", "cli"])("%s/ has no import cycle", (dir) => {
    const graph = new Map(
      modulesUnder(path.join(ROOT, dir)).map((file) => [file, imports(file, readFileSync(file, "utf8"))]),
    );
    expect(graph.size).toBeGreaterThan(10);
    expect(importCycles(graph).map((cycle) => cycle.map((file) => path.relative(ROOT, file)).join(" -> "))).toEqual([]);
  });

  it("follows value, type-only and dynamic imports, and finds the cycles they close", () => {
    const read = (text: string) => imports("/m/a.ts", text);
    expect(read('import { b } from "./b";\nexport * from "./c";')).toEqual(["/m/b.ts", "/m/c.ts"]);
    expect(read('import type { B } from "./b";\nimport { type C } from "./c";\nexport type { D } from "./d";')).toEqual(
      ["/m/b.ts", "/m/c.ts", "/m/d.ts"],
    );
    expect(read('import { type B, b } from "./b";\nimport x from "./x";\nimport "./y.js";')).toEqual([
      "/m/b.ts",
      "/m/x.ts",
      "/m/y.ts",
    ]);
    expect(read('const run = () => import("./commands/e");\nimport p from "node:path";')).toEqual(["/m/commands/e.ts"]);
    expect(
      importCycles(
        new Map([
          ["a", ["b"]],
          ["b", ["c"]],
          ["c", ["a"]],
        ]),
      ),
    ).toEqual([["a", "b", "c", "a"]]);
    expect(
      importCycles(
        new Map([
          ["a", ["b", "c"]],
          ["b", ["c"]],
          ["c", []],
        ]),
      ),
    ).toEqual([]);
  });
});

// The Worker's and the CLI's modules import each other without cycles. In a cycle, which module
// finishes evaluating first depends on which one something imports first: app.ts once imported
// oauth-errors.ts, which imported app.ts back, so a test importing routes/token.ts before the app
// found the routes it mounts still undefined. Type-only imports are erased, so they do not count.
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

/** The relative modules a file imports or re-exports at run time. */
function runtimeImports(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022);
  const specifiers: string[] = [];
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause;
      const bindings = clause?.namedBindings;
      const typeOnly = clause !== undefined && (clause.isTypeOnly || (!clause.name && bindings !== undefined && ts.isNamedImports(bindings) && bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly)));
      if (!typeOnly) specifiers.push((statement.moduleSpecifier as ts.StringLiteral).text);
    } else if (ts.isExportDeclaration(statement) && statement.moduleSpecifier && !statement.isTypeOnly) {
      specifiers.push((statement.moduleSpecifier as ts.StringLiteral).text);
    }
  }
  return specifiers.filter((s) => s.startsWith(".")).map((s) => path.resolve(path.dirname(file), s.endsWith(".ts") ? s : `${s}.ts`));
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
    const graph = new Map(modulesUnder(path.join(ROOT, dir)).map((file) => [file, runtimeImports(file, readFileSync(file, "utf8"))]));
    expect(graph.size).toBeGreaterThan(10);
    expect(importCycles(graph).map((cycle) => cycle.map((file) => path.relative(ROOT, file)).join(" -> "))).toEqual([]);
  });

  it("finds a cycle through a value import, and none through type-only imports", () => {
    const imports = (text: string) => runtimeImports("/m/a.ts", text);
    expect(imports('import { b } from "./b";\nexport * from "./c";')).toEqual(["/m/b.ts", "/m/c.ts"]);
    expect(imports('import type { B } from "./b";\nimport { type C } from "./c";\nexport type { D } from "./d";')).toEqual([]);
    expect(imports('import { type B, b } from "./b";\nimport x from "./x";')).toEqual(["/m/b.ts", "/m/x.ts"]);
    expect(importCycles(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]]]))).toEqual([["a", "b", "c", "a"]]);
    expect(importCycles(new Map([["a", ["b", "c"]], ["b", ["c"]], ["c", []]]))).toEqual([]);
  });
});

// The table in docs/policies.md ("What each condition does with each kind of claim value") is the one
// definition of conditions. Every cell is checked twice: against the property tests' reference
// evaluator (test/worker/fuzz/reference.ts, written from the table) and against the code, through the
// whole path a claim takes (src/verify/claim-normalisation.ts normalisation, then src/policy/rule-condition.ts). The
// fuzz tests then compare the code with the reference on random policies, so the docs, the reference
// and the code cannot drift apart without a test failing.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { claimValue, compileCondition } from "../../src/policy/rule-condition";
import type { ConditionSpec } from "../../src/types";
import { normalizeClaims } from "../../src/verify/claim-normalisation";
import { referenceCondition } from "../worker/fuzz/reference";

const guide = readFileSync(new URL("../../docs/policies.md", import.meta.url), "utf8");
const section = guide
  .split("#### What each condition does with each kind of claim value")[1]
  ?.split("\n\n")
  .find((block) => block.startsWith("| condition"));
const lines = (section ?? "").trim().split("\n");
const cells = (line: string) =>
  line
    .split("|")
    .slice(1, -1)
    .map((cell) => cell.trim());
const header = cells(lines[0] ?? "|");
const rows = lines.slice(2).map(cells);

/** `string \`"platform/infra"\`` → the JSON value in backticks; "missing claim" → undefined. */
function columnValue(heading: string): unknown {
  const example = /`([^`]*)`/.exec(heading)?.[1];
  return example === undefined ? undefined : JSON.parse(example);
}

/** `any-of list \`[b/*, "42"]\`` → the condition as YAML reads it (the way policy files are written). */
function rowCondition(heading: string): ConditionSpec {
  const example = /`([^`]*)`$/.exec(heading)?.[1];
  const parsed: unknown = parse(example ?? "");
  // YAML reads unquoted true/42 as a boolean/number; policy sources mean their spelling (rule-schema.ts patternValue).
  const spell = (v: unknown) => (typeof v === "string" ? v : String(v));
  if (Array.isArray(parsed)) return parsed.map(spell);
  if (parsed !== null && typeof parsed === "object") {
    const inner = (parsed as { not: unknown }).not;
    return { not: Array.isArray(inner) ? inner.map(spell) : spell(inner) };
  }
  return spell(parsed);
}

/** What the code decides for a token carrying `value` as claim `c` (absent when undefined). */
function codeDecides(condition: ConditionSpec, value: unknown): boolean {
  const claims = normalizeClaims(value === undefined ? {} : { c: value }, "generic");
  return compileCondition("c", condition).matches(claimValue(claims, "c"));
}

describe("the semantics table in docs/policies.md", () => {
  it("has a row for each operator and a column for each kind of claim value", () => {
    expect(header.slice(1).map((h) => h.replace(/ `.*`$/, ""))).toEqual([
      "string",
      "number",
      "boolean",
      "array",
      "empty array",
      "missing claim",
    ]);
    expect(rows.map((row) => row[0]!.replace(/ `.*`$/, ""))).toEqual([
      "literal",
      "`*` glob",
      "`**` glob",
      "any-of list",
      "`not`",
    ]);
    for (const row of rows) for (const cell of row.slice(1)) expect(cell).toMatch(/^(match|no match): /);
  });

  for (const row of rows) {
    const condition = rowCondition(row[0]!);
    row.slice(1).forEach((cell, i) => {
      const value = columnValue(header[i + 1]!);
      const expected = cell.startsWith("match:");
      it(`${row[0]} on ${header[i + 1]}: ${expected ? "match" : "no match"} (reference and code)`, () => {
        expect(referenceCondition(condition, value)).toBe(expected);
        expect(codeDecides(condition, value)).toBe(expected);
      });
    });
  }
});

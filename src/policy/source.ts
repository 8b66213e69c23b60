// Policy source files (YAML) → a checked policy, with file and line for every problem. Used by the CLI
// (validate, test, push, explain); the Worker only ever sees compiled snapshots and never loads YAML.

import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from "yaml";
import { MAX_YAML_ALIASES } from "../limits";
import { lintPolicy, type LintCode } from "./lint";
import { normalizePolicy, type Path, type PolicyParts, type Problem } from "./schema";
import { escapeControl } from "./spec";

export interface SourceFile {
  name: string;
  text: string;
}

export interface Finding {
  file: string;
  line: number;
  column: number;
  severity: "error" | "warning";
  message: string;
  /** Lint code when the finding comes from lint. */
  code?: LintCode;
}

export interface ParsedYaml {
  value: unknown;
  errors: Finding[];
  /** Line and column of the value (or key) at a path; the nearest existing ancestor when it is absent. */
  locate(path: Path, atKey?: boolean): { line: number; column: number };
}

export function parseYaml(file: SourceFile): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(file.text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const position = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const errors: Finding[] = [...doc.errors, ...doc.warnings].map((e) => ({
    file: file.name,
    ...position(e.pos[0]),
    severity: "error",
    message: e.message.split("\n")[0]!,
  }));
  if (errors.length === 0) {
    for (const { offset, message } of respelledScalars(doc)) errors.push({ file: file.name, ...position(offset), severity: "error", message });
  }
  let value: unknown;
  if (errors.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
    } catch (err) {
      errors.push({ file: file.name, line: 1, column: 1, severity: "error", message: err instanceof Error ? err.message : String(err) });
    }
  }
  return {
    value,
    errors,
    locate(path, atKey = false) {
      let node: unknown = doc.contents;
      let found = node as Node | null;
      for (let i = 0; i < path.length && node; i++) {
        if (isAlias(node)) node = node.resolve(doc);
        const segment = path[i];
        if (isMap(node)) {
          const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === segment);
          if (!pair) break;
          node = atKey && i === path.length - 1 ? pair.key : pair.value;
        } else if (isSeq(node) && typeof segment === "number") {
          node = node.items[segment];
        } else {
          break;
        }
        if (node && (node as Node).range) found = node as Node;
      }
      return position(found?.range?.[0] ?? 0);
    },
  };
}

/**
 * Numbers and booleans whose source text is not how they read back (`0x10`, `010`, `1e3`, `+5`, `1.0`,
 * `.inf`, a 20-digit id, `True`, and under `%YAML 1.1` `yes`/`on`): policies compare claims as strings,
 * so the value that would be stored ("16") silently differs from what the author wrote. Refused;
 * plain decimal (or true/false) or a quoted string says the same thing unambiguously.
 */
function respelledScalars(doc: Document): { offset: number; message: string }[] {
  const found: { offset: number; message: string }[] = [];
  visit(doc, {
    Scalar(_key, node) {
      const { value, source } = node;
      if ((typeof value !== "number" && typeof value !== "boolean" && typeof value !== "bigint") || source === undefined) return;
      const read = String(value);
      if (read === source) return;
      let message: string;
      if (typeof value === "boolean") message = `the boolean ${source} would be read as ${read}: write ${read}, or quote it ("${source}") if it is text`;
      else if (/^-?\d+$/.test(read) && !Number.isSafeInteger(Number(read))) {
        message = `the number ${source} is too large to be read exactly (it would be read as ${read}): quote it ("${source}")`;
      } else {
        const decimal = /^-?\d+(\.\d+)?$/.test(read) ? ` (${read})` : "";
        message = `the number ${source} would be read as ${read}: write it in plain decimal${decimal}, or quote it ("${source}") if it is text`;
      }
      found.push({ offset: node.range?.[0] ?? 0, message });
    },
  });
  return found;
}

export interface CheckedSources {
  /** Present only when there is no error (warnings allowed). */
  policy?: PolicyParts;
  findings: Finding[];
}

/** Strict parsing, cross-checks and lint over all policy files; every finding with file and line. */
export function checkPolicySources(files: readonly SourceFile[]): CheckedSources {
  const parsed = new Map(files.map((file) => [file.name, parseYaml(file)]));
  const findings: Finding[] = [...parsed.values()].flatMap((p) => p.errors);
  if (findings.length > 0) return { findings };

  const { policy, problems, origins } = normalizePolicy(
    files.map((file) => ({ name: file.name, value: parsed.get(file.name)!.value })),
    "source",
  );
  const place = (problem: Omit<Problem, "message">) => {
    const at = parsed.get(problem.document)?.locate(problem.path, problem.atKey) ?? { line: 1, column: 1 };
    return { file: problem.document, ...at };
  };
  findings.push(...problems.map((p): Finding => ({ ...place(p), severity: "error", message: p.message })));
  if (findings.length > 0) return { findings: sortFindings(findings) };

  for (const lint of lintPolicy(policy)) {
    const origin = origins.get(lint.rule)!;
    findings.push({ ...place({ document: origin.document, path: [...origin.path, ...lint.at] }), severity: lint.severity, code: lint.code, message: lint.message });
  }
  const sorted = sortFindings(findings);
  return sorted.some((f) => f.severity === "error") ? { findings: sorted } : { policy, findings: sorted };
}

function sortFindings(findings: Finding[]): Finding[] {
  return findings.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column));
}

/** One line per finding, whatever the file name or the YAML parser's message quotes. */
export function formatFinding(f: Finding): string {
  return escapeControl(`${f.file}:${f.line}:${f.column}: ${f.severity}: ${f.message}${f.code ? ` [${f.code}]` : ""}`);
}

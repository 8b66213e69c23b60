// Policy source files (YAML) → a checked policy, with file and line for every problem. Used by the CLI
// (validate, test, push, explain); the Worker only ever sees compiled snapshots and never loads YAML.

import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  Parser,
  visit,
  type CST,
  type Document,
  type Node,
  type YAMLError,
} from "yaml";
import { MAX_YAML_ALIASES } from "../limits";
import { lintPolicy, type LintCode } from "./policy-lint";
import { normalizePolicy, type Path, type PolicyParts, type Problem } from "./policy-schema";
import { escapeControl } from "./shape-spec";

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
  const syntax = syntaxProblem(file.text, [...doc.errors, ...doc.warnings]);
  const errors: Finding[] = syntax
    ? [{ file: file.name, ...position(syntax.offset), severity: "error", message: syntax.message }]
    : [];
  if (errors.length === 0) {
    for (const { offset, message } of respelledScalars(doc))
      errors.push({ file: file.name, ...position(offset), severity: "error", message });
  }
  let value: unknown;
  if (errors.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
    } catch (err) {
      errors.push({
        file: file.name,
        line: 1,
        column: 1,
        severity: "error",
        message: err instanceof Error ? err.message : String(err),
      });
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
 * The first YAML syntax problem of a file, where an author fixes it, then in the parser's words. One
 * only: after the first, the parser's errors are mostly echoes of it. The parser reports an unclosed
 * `[`, `{` or quote where it gives up, often lines later, so that is reported at the opening instead.
 */
function syntaxProblem(text: string, problems: readonly YAMLError[]): { offset: number; message: string } | undefined {
  const first = [...problems].sort((a, b) => a.pos[0] - b.pos[0])[0];
  if (!first) return undefined;
  const detail = `(YAML: ${first.message.split("\n")[0]})`;
  const opener = unclosedOpener(text, first.pos[0]);
  if (opener) return { offset: opener.offset, message: `${opener.message} ${detail}` };
  const at = first.pos[0];
  // A complaint about the blanks that start a line is about indentation: point at the line's content.
  const content = firstNonBlank(text, at);
  const inIndentation =
    /^[ \t]*$/.test(text.slice(text.lastIndexOf("\n", at - 1) + 1, at)) && /[^\r\n]/.test(text[content] ?? "\n");
  switch (first.code) {
    case "DUPLICATE_KEY":
      return { offset: at, message: `this key is already in the same mapping: keys must be unique ${detail}` };
    case "MULTIPLE_DOCS":
      return {
        offset: at,
        message: `a policy file holds one YAML document: remove this '---' or split the file ${detail}`,
      };
    case "TAB_AS_INDENT":
      return { offset: at, message: `indent with spaces, not tabs ${detail}` };
    case "MULTILINE_IMPLICIT_KEY":
      return { offset: at, message: `a key must fit on one line: is the ':' after it missing? ${detail}` };
    case "BLOCK_AS_IMPLICIT_KEY": {
      // `key: value` followed by a line indented deeper: the parser points at the value, which it then
      // reads as a key spanning lines; the line to fix is the deeper one.
      const wrapped = problems.find((p) => p.code === "MULTILINE_IMPLICIT_KEY" && p.pos[0] === at);
      const newline = wrapped ? text.slice(at, wrapped.pos[1]).indexOf("\n") : -1;
      if (newline >= 0)
        return {
          offset: firstNonBlank(text, at + newline + 1),
          message: `this line is indented deeper than the key above it ${detail}`,
        };
      break;
    }
  }
  if (inIndentation && (first.code === "BAD_INDENT" || first.code === "MISSING_CHAR"))
    return { offset: content, message: `this line is not indented like the lines it belongs with ${detail}` };
  return { offset: at, message: `YAML syntax error ${detail}` };
}

/** Offset of the first character that is not a space or tab from `offset` on. */
function firstNonBlank(text: string, offset: number): number {
  let at = offset;
  while (text[at] === " " || text[at] === "\t") at++;
  return at;
}

/**
 * The last `[`, `{`, `"` or `'` up to `limit` (the parser's first error, which an unclosed one causes)
 * that its own closing character does not end, from the parser's concrete syntax tree: where a missing
 * bracket or quote belongs.
 */
function unclosedOpener(text: string, limit: number): { offset: number; message: string } | undefined {
  let found: { offset: number; message: string } | undefined;
  const note = (offset: number, message: string) => {
    if (offset <= limit && (!found || offset > found.offset)) found = { offset, message };
  };
  // An explicit stack: a deeply nested file must not overflow the call stack.
  const pending: (CST.Token | null | undefined)[] = [...new Parser().parse(text)];
  while (pending.length > 0) {
    const token = pending.pop();
    if (!token) continue;
    switch (token.type) {
      case "document":
        pending.push(token.value);
        break;
      case "block-map":
      case "block-seq":
        for (const item of token.items) pending.push(item.key, item.value);
        break;
      case "flow-collection": {
        for (const item of token.items) pending.push(item.key, item.value);
        const open = token.start.source;
        const close = open === "[" ? "]" : "}";
        const end = token.end.find((t) => t.type === "flow-seq-end" || t.type === "flow-map-end");
        if (end?.source !== close)
          note(
            token.offset,
            end
              ? `this '${open}' is closed with '${end.source}', not '${close}'`
              : `this '${open}' is never closed with '${close}'`,
          );
        break;
      }
      case "single-quoted-scalar":
      case "double-quoted-scalar": {
        const quote = token.source[0]!;
        if (!isClosedQuote(token.source)) note(token.offset, `this ${quote} quote is never closed`);
        break;
      }
    }
  }
  return found;
}

/**
 * Whether a quoted scalar's source ends with its closing quote (`''` inside single quotes and `\"` inside double
 * quotes are escapes).
 */
function isClosedQuote(source: string): boolean {
  const quote = source[0];
  for (let i = 1; i < source.length; i++) {
    if (quote === '"' && source[i] === "\\") i++;
    else if (source[i] === quote) {
      if (quote === "'" && source[i + 1] === "'") i++;
      else return i === source.length - 1;
    }
  }
  return false;
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
      if (
        (typeof value !== "number" && typeof value !== "boolean" && typeof value !== "bigint") ||
        source === undefined
      )
        return;
      const read = String(value);
      if (read === source) return;
      let message: string;
      if (typeof value === "boolean")
        message =
          `the boolean ${source} would be read as ${read}: write ${read}, or quote it ("${source}") if it ` + `is text`;
      else if (/^-?\d+$/.test(read) && !Number.isSafeInteger(Number(read))) {
        message =
          `the number ${source} is too large to be read exactly (it would be read as ${read}): quote it ` +
          `("${source}")`;
      } else {
        const decimal = /^-?\d+(\.\d+)?$/.test(read) ? ` (${read})` : "";
        message =
          `the number ${source} would be read as ${read}: write it in plain decimal${decimal}, or quote it ` +
          `("${source}") if it is text`;
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
    findings.push({
      ...place({ document: origin.document, path: [...origin.path, ...lint.at] }),
      severity: lint.severity,
      code: lint.code,
      message: lint.message,
    });
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

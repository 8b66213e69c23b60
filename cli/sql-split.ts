// wrangler 4.86's D1 statement splitter (src/d1/splitter.ts and trimmer.ts in its bundle), for the
// in-process `d1 execute` (cli/local-storage.ts): the same statements out of the same SQL. wrangler's
// own export reads a quoted string one character at a time and asks the growing string whether it
// ends with the closing quote, which is quadratic: 12 s of CPU for the history rows of a 10 000-rule
// push. This is the same algorithm with that one step done by indexOf. test/node/sql-split.test.ts
// holds it to wrangler's export on generated SQL.

/** A cursor over the code points of `sql`, as wrangler's `sql[Symbol.iterator]()` walks it. */
class Cursor {
  private at = 0;
  constructor(private readonly sql: string) {}

  next(): IteratorResult<string> {
    if (this.at >= this.sql.length) return { done: true, value: undefined };
    const value = String.fromCodePoint(this.sql.codePointAt(this.at)!);
    this.at += value.length;
    return { done: false, value };
  }

  /** wrangler's consumeUntilMarker: everything up to and including the next `marker`, or the rest. */
  untilMarker(marker: string): string {
    const found = this.sql.indexOf(marker, this.at);
    const end = found === -1 ? this.sql.length : found + marker.length;
    const consumed = this.sql.slice(this.at, end);
    this.at = end;
    return consumed;
  }

  /** wrangler's consumeWhile: code points while `predicate` holds of what was read (the first that fails included). */
  consumeWhile(predicate: (read: string) => boolean): string {
    let next = this.next();
    let read = "";
    while (!next.done) {
      read += next.value;
      if (!predicate(read)) break;
      next = this.next();
    }
    return read;
  }
}

export function splitSqlQuery(sql: string): string[] {
  const trimmed = trimSqlQuery(sql);
  if (!mayContainMultipleStatements(trimmed)) return [trimmed];
  const split = splitSqlIntoStatements(trimmed);
  return split.length === 0 ? [trimmed] : split;
}

function trimSqlQuery(sql: string): string {
  if (!sql.includes("BEGIN TRANSACTION")) return sql;
  const trimmed = sql.replace("BEGIN TRANSACTION;", "").replace("COMMIT;", "");
  if (trimmed.includes("BEGIN TRANSACTION")) {
    throw new Error(
      "Wrangler could not process the provided SQL file, as it contains several transactions.\nD1 runs your SQL in " +
        "a transaction for you.\nPlease export an SQL file from your SQLite database and try again.",
    );
  }
  return trimmed;
}

function mayContainMultipleStatements(sql: string): boolean {
  const trimmed = sql.trimEnd();
  const semicolon = trimmed.indexOf(";");
  return semicolon !== -1 && semicolon !== trimmed.length - 1;
}

function splitSqlIntoStatements(sql: string): string[] {
  const statements: string[] = [];
  let str = "";
  const compoundStatementStack: ((s: string) => boolean)[] = [];
  const cursor = new Cursor(sql);
  let next = cursor.next();
  while (!next.done) {
    const char = next.value;
    if (compoundStatementStack[0]?.(str + char)) compoundStatementStack.shift();
    switch (char) {
      case "'":
      case '"':
      case "`":
        str += char + cursor.untilMarker(char);
        break;
      case "$": {
        const dollarQuote = "$" + cursor.consumeWhile(isDollarQuoteIdentifier);
        str += dollarQuote;
        if (dollarQuote.endsWith("$")) str += cursor.untilMarker(dollarQuote);
        break;
      }
      case "-":
        next = cursor.next();
        if (!next.done && next.value === "-") {
          cursor.untilMarker("\n");
          str += "\n";
          break;
        }
        str += char;
        continue;
      case "/":
        next = cursor.next();
        if (!next.done && next.value === "*") {
          cursor.untilMarker("*/");
          break;
        }
        str += char;
        continue;
      case ";":
        if (compoundStatementStack.length === 0) {
          statements.push(str);
          str = "";
        } else str += char;
        break;
      default:
        str += char;
        break;
    }
    if (/\s(BEGIN|CASE)\s$/i.test(str)) compoundStatementStack.unshift((s) => /\sEND[;\s]$/.test(s));
    next = cursor.next();
  }
  statements.push(str);
  return statements.map((statement) => statement.trim()).filter((statement) => statement.length > 0);
}

function isDollarQuoteIdentifier(str: string): boolean {
  const lastChar = str.slice(-1);
  return lastChar !== "$" && (/[0-9_]/i.test(lastChar) || lastChar.toLowerCase() !== lastChar.toUpperCase());
}

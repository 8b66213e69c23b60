// cli/sql-split.ts against wrangler's own splitter (its `unstable_splitSqlQuery` export): the same
// statements from generated SQL made of the pieces the splitter treats specially (quotes, dollar
// quotes, comments, semicolons, BEGIN/CASE ... END), and from a history-sized string literal.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { unstable_splitSqlQuery as wranglerSplit } from "wrangler";
import { splitSqlQuery } from "../../cli/sql-split";

const PIECES = [
  "'",
  '"',
  "`",
  "''",
  "$",
  "$a$",
  "$1",
  "--",
  "-",
  "/*",
  "*/",
  "/",
  "*",
  ";",
  "\n",
  " ",
  "\t",
  "BEGIN",
  "begin",
  "CASE",
  "END",
  "END;",
  "BEGIN TRANSACTION;",
  "COMMIT;",
  "x",
  "é",
  "😀",
  "SELECT 1",
  "INSERT INTO t VALUES ('a;b')",
];

describe("splitSqlQuery", () => {
  it("splits generated SQL exactly as wrangler does", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...PIECES), { maxLength: 40 }), (pieces) => {
        const sql = pieces.join("");
        const ours = (() => {
          try {
            return splitSqlQuery(sql);
          } catch (err) {
            return `throws ${(err as Error).message}`;
          }
        })();
        const theirs = (() => {
          try {
            return wranglerSplit(sql);
          } catch (err) {
            return `throws ${(err as Error).message}`;
          }
        })();
        expect(ours).toEqual(theirs);
      }),
      { numRuns: 3000 },
    );
  });

  it("splits statements around a 100 kB string literal as wrangler does", () => {
    const big = "x';".repeat(1000) + "y".repeat(100_000);
    const sql = `INSERT INTO c VALUES ('${big.replaceAll("'", "''")}');\nSELECT 'done'; -- end\n`;
    const ours = splitSqlQuery(sql);
    expect(ours).toHaveLength(2);
    expect(ours).toEqual(wranglerSplit(sql));
  });
});

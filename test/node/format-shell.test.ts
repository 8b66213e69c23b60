// format=env is meant for `eval "$(curl ...)"`: prove with a real POSIX shell that hostile values
// come out byte for byte and never execute.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { formatEnv } from "../../src/format/shell";

const dir = mkdtempSync(path.join(tmpdir(), "gatepass-shell-"));
const canary = path.join(dir, "pwned");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOSTILE = [
  `'; touch ${canary}; '`,
  `$(touch ${canary})`,
  `\`touch ${canary}\``,
  `"; touch ${canary}; "`,
  `\\'$(touch ${canary})\\'`,
  `'\\''`,
  `line1\nline2\n; touch ${canary}`,
  `$HOME \${PATH} !! * ? [a] ~ # & | ; < > ( )`,
  `ünïcødé ✓ \t tab`,
  `''''`,
  `\\`,
  ``,
];

describe("format=env through a real sh", () => {
  it.each(HOSTILE.map((v) => [JSON.stringify(v), v]))("round-trips %s without executing it", (_label, value) => {
    const script = formatEnv([["GATEPASS_TEST_VALUE", value], ["SECOND", "after"]]);
    const out = execFileSync("sh", ["-c", 'eval "$1"; printf "%s|%s" "$GATEPASS_TEST_VALUE" "$SECOND"', "sh", script], { encoding: "utf8" });
    expect(out).toBe(`${value}|after`);
    expect(existsSync(canary)).toBe(false);
  });
});

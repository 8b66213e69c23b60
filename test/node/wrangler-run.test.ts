// cli/wrangler.ts runs wrangler as a Node child process and collects its output as text; here a small
// Node script stands in for wrangler.
import { describe, expect, it } from "vitest";
import { runNode } from "../../cli/wrangler";

describe("runNode (how the CLI runs wrangler)", () => {
  it("keeps a multi-byte UTF-8 character that arrives split across two pipe chunks", async () => {
    // "€" is E2 82 AC and "😀" F0 9F 98 80: write each in two parts, with a pause so the pipe delivers two chunks.
    const script = `
      const bytes = (s) => Buffer.from(s, "utf8");
      const split = async (stream, text, at) => {
        const b = bytes(text);
        stream.write(b.subarray(0, at));
        await new Promise((r) => setTimeout(r, 100));
        stream.write(b.subarray(at));
      };
      (async () => { await split(process.stdout, "price: €5 ✓", 8); await split(process.stderr, "ok 😀 ⛅️", 5); })();
    `;
    const result = await runNode(["-e", script]);
    expect(result).toEqual({ code: 0, stdout: "price: €5 ✓", stderr: "ok 😀 ⛅️" });
  });

  it("passes input on stdin and reports the exit code", async () => {
    const result = await runNode(
      [
        "-e",
        `let s = ""; process.stdin.setEncoding("utf8").on("data", (d) => (s += d)).on("end", () => { process.stdout.write(s.toUpperCase()); process.exit(3); });`,
      ],
      { input: "schlüssel" },
    );
    expect(result).toEqual({ code: 3, stdout: "SCHLÜSSEL", stderr: "" });
  });
});

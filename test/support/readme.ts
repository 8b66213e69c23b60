// The README's local walkthrough, as test/node/walkthrough.test.ts runs it and readme.test.ts checks it.
import { readFile } from "node:fs/promises";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** The walkthrough (the block of "Run it" that sets GP): its commands, continuation lines joined. */
export async function walkthroughCommands(): Promise<string[]> {
  const readme = await readFile(path.join(ROOT, "README.md"), "utf8");
  const block = /\n## Run it\n[\s\S]*?```sh\n(GP=[\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error("README has no local walkthrough block");
  return block
    .replace(/\\\n\s*/g, "")
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.trim().startsWith("#"));
}

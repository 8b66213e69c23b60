// The README stays a five-minute read whose every command is exercised: its size, its links (and the
// docs' links) resolve, each shell command it shows is run by a named test, and its policy and GitLab
// snippets are valid as written.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { includeComponent } from "../support/component";
import { walkthroughCommands } from "../support/readme";

const ROOT = path.resolve(import.meta.dirname, "../..");
const README = readFileSync(path.join(ROOT, "README.md"), "utf8");
const MAX_README_BYTES = 12 * 1024;

/** The fenced blocks of a Markdown text with the given language. */
const blocks = (text: string, lang: string) =>
  [...text.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);

/** Each README shell command (comments dropped), and the test that runs it: the file must contain the evidence. */
const RUN_BY: { command: RegExp; file: string; evidence: string }[] = [
  { command: /^npm ci && npm run demo$/, file: "test/node/demo.test.ts", evidence: 'spawn("npm", ["run", "demo"]' },
  { command: /^npm run dev$/, file: "test/node/walkthrough.test.ts", evidence: 'spawn("npm", ["run", "dev"' },
  { command: /^npm test$/, file: ".ci/run", evidence: "npm test --" },
  {
    command: /^npx gatepass policies validate$/,
    file: "test/node/policies-cli.test.ts",
    evidence: 'gatepass("validate")',
  },
  { command: /^npx gatepass policies test$/, file: "test/node/policies-cli.test.ts", evidence: 'gatepass("test")' },
  { command: /^npx gatepass policies push$/, file: "test/node/policies-cli.test.ts", evidence: 'gatepass("push"' },
  {
    command: /^npx gatepass deploy --secrets-dir \S+$/,
    file: "test/node/deploy-cli.test.ts",
    evidence: '"--secrets-dir", secrets',
  },
];

/** GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");

describe("README.md", () => {
  it(`is at most ${MAX_README_BYTES} bytes`, () => {
    expect(Buffer.byteLength(README)).toBeLessThanOrEqual(MAX_README_BYTES);
  });

  it("shows only shell commands that a test runs (the walkthrough: test/node/walkthrough.test.ts)", async () => {
    const walkthrough = (await walkthroughCommands()).join("\n");
    const commands = blocks(README, "sh")
      .filter((block) => !block.startsWith("GP="))
      .flatMap((block) => block.split("\n"))
      .map((line) => line.replace(/\s+#.*$/, "").trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    expect(walkthrough).toContain("npx gatepass dev token");
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) {
      const runner = RUN_BY.find((entry) => entry.command.test(command));
      expect(runner, `no test is named as running: ${command}`).toBeDefined();
      expect(
        readFileSync(path.join(ROOT, runner!.file), "utf8"),
        `${runner!.file} no longer runs: ${command}`,
      ).toContain(runner!.evidence);
    }
  });

  it("shows a rule of the example policies as it is there (so policies validate and test cover it)", () => {
    const [example] = blocks(README, "yaml").filter((block) => block.startsWith("rules:"));
    const [shown] = (parse(example!) as { rules: Record<string, unknown>[] }).rules;
    const rules = (
      parse(readFileSync(path.join(ROOT, "policies/rules.yaml"), "utf8")) as { rules: Record<string, unknown>[] }
    ).rules;
    const { description: _, ...original } = rules.find((rule) => rule.name === shown!.name) ?? {};
    expect(shown).toEqual(original);
  });

  it("includes the GitLab component with inputs it declares, and extends a job it defines", () => {
    const [pipeline] = blocks(README, "yaml").filter((block) => block.startsWith("include:"));
    const config = parse(pipeline!) as {
      include: { component: string; inputs: Record<string, string> }[];
      deploy: { extends: string };
    };
    expect(config.include[0]!.component).toMatch(/\/gatepass@\d+\.\d+\.\d+$/); // templates/gatepass.yml, by GitLab's layout
    const jobs = includeComponent(config.include[0]!.inputs);
    expect(Object.keys(jobs)).toContain(config.deploy.extends);
  });
});

describe("links in README.md and docs/", () => {
  const pages = [
    "README.md",
    ...readdirSync(path.join(ROOT, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];

  it.each(pages)("%s links only to files and headings that exist", (page) => {
    const text = readFileSync(path.join(ROOT, page), "utf8").replace(/```[\s\S]*?```/g, "");
    const broken: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue; // https:, mailto:
      const [file, anchor] = target!.split("#");
      const resolved = file ? path.join(path.dirname(path.join(ROOT, page)), file) : path.join(ROOT, page);
      let content: string;
      try {
        content = readFileSync(resolved, "utf8");
      } catch {
        broken.push(target!);
        continue;
      }
      if (anchor === undefined) continue;
      const headings = [...content.matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1]!));
      if (!headings.includes(anchor)) broken.push(target!);
    }
    expect(broken).toEqual([]);
  });
});

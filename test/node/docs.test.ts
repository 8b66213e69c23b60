// docs/errors.md documents every stable error code with its status, and nothing that no longer
// exists; codes concealed on the wire say so; and every code is raised somewhere (a documented code
// nothing returns misleads the reader). docs/policies.md lists exactly the claim names a GitLab
// issuer's rules may use, and docs/github.md those of a GitHub issuer.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { ERROR_CODES } from "../../src/errors";
import { log } from "../../src/log";
import { GITHUB_CLAIMS, GITLAB_CLAIMS } from "../../src/policy/rule-schema";

const reference = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
const rows = [...reference.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|\s*(`[a-z_]+`)?\s*\|/gm)];
const documented = new Set(rows.map((m) => `${m[1]} ${m[2]}`));

describe("docs/errors.md", () => {
  it('names the request log line by the field the log writes (`"event":"request"`)', () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: string) => void lines.push(line));
    try {
      log("info", "request", { request_id: "r" });
    } finally {
      spy.mockRestore();
    }
    const written = JSON.parse(lines[0]!) as Record<string, unknown>;
    const field = Object.keys(written).find((key) => written[key] === "request");
    expect(/`"(\w+)":"request"/.exec(reference)?.[1]).toBe(field);
  });

  it("lists every error code with its HTTP status", () => {
    const expected = Object.entries(ERROR_CODES).map(([code, spec]) => `${code} ${spec.status}`);
    expect([...documented].sort()).toEqual(expected.sort());
  });

  it("marks exactly the codes the Verifier conceals behind token_unverified (test/worker/exchange/routes.test.ts checks the wire)", () => {
    const concealed = rows.filter((m) => m[3] !== undefined).map((m) => `${m[1]} as ${m[3]}`);
    expect(concealed.sort()).toEqual(
      ["algorithm_not_allowed", "issuer_unknown", "key_unknown", "signature_invalid"].map(
        (c) => `${c} as \`token_unverified\``,
      ),
    );
  });

  it("documents only codes that gatepass raises (src/ or cli/, beyond their definition)", () => {
    const root = new URL("../..", import.meta.url).pathname;
    const sources = ["src", "cli"]
      .flatMap((dir) =>
        readdirSync(path.join(root, dir), { recursive: true, encoding: "utf8" }).map((file) => path.join(dir, file)),
      )
      .filter((file) => file.endsWith(".ts") && file !== path.join("src", "errors.ts"))
      .map((file) => readFileSync(path.join(root, file), "utf8"))
      .join("\n");
    expect(Object.keys(ERROR_CODES).filter((code) => !sources.includes(`"${code}"`))).toEqual([]);
  });
});

describe("docs/policies.md", () => {
  it("lists the claim names rules for a GitLab issuer may use, as the schema accepts them", () => {
    const guide = readFileSync(new URL("../../docs/policies.md", import.meta.url), "utf8");
    const listing = /Rules for a `kind: gitlab` issuer may name these claims[^:]*:([^.]*)\./.exec(guide)?.[1];
    expect(listing).toBeDefined();
    expect([...listing!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).sort()).toEqual([...GITLAB_CLAIMS].sort());
  });
});

describe("the GitLab component's version", () => {
  it("is the package's version wherever the docs and the template include it", () => {
    const root = new URL("../..", import.meta.url).pathname;
    const { version } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };
    for (const file of ["README.md", "docs/gitlab.md", "templates/gatepass.yml"]) {
      const versions = [
        ...readFileSync(path.join(root, file), "utf8").matchAll(
          /component: \$CI_SERVER_FQDN\/[\w/-]+\/gatepass@([^\s]+)/g,
        ),
      ].map((m) => m[1]);
      expect(versions.length, file).toBeGreaterThan(0);
      expect(new Set(versions), file).toEqual(new Set([version]));
    }
  });
});

describe("docs/github.md", () => {
  it("lists the claim names rules for a GitHub issuer may use, as the schema accepts them", () => {
    const guide = readFileSync(new URL("../../docs/github.md", import.meta.url), "utf8");
    const listing = /Rules for a `kind: github` issuer may name these claims[^:]*:([^.]*)\./.exec(guide)?.[1];
    expect(listing).toBeDefined();
    expect([...listing!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).sort()).toEqual([...GITHUB_CLAIMS].sort());
  });
});

describe("docs/architecture.md", () => {
  it("names only modules that exist, and every module of src/ and cli/ by its name or its folder's", () => {
    const root = new URL("../..", import.meta.url).pathname;
    const page = readFileSync(path.join(root, "docs/architecture.md"), "utf8");
    const named = [...page.matchAll(/`((?:src|cli|scripts)\/[\w./-]+\.(?:ts|mjs))`/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(20);
    expect(named.filter((file) => !existsSync(path.join(root, file)))).toEqual([]);
    const modules = ["src", "cli"]
      .flatMap((dir) =>
        readdirSync(path.join(root, dir), { recursive: true, encoding: "utf8" }).map((file) => path.join(dir, file)),
      )
      .filter((file) => /\.(ts|mjs)$/.test(file) && !file.endsWith(".d.ts"));
    const onPage = (file: string) => page.includes(path.basename(file)) || page.includes(`\`${path.dirname(file)}/\``);
    expect(modules.filter((file) => !onPage(file))).toEqual([]);
  });
});

// The README's troubleshooting table documents every stable error code, and nothing that no longer
// exists; and every code is raised somewhere (a documented code nothing returns misleads the reader).
// docs/policies.md lists exactly the claim names a GitLab issuer's rules may use.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../src/errors";
import { GITLAB_CLAIMS } from "../../src/policy/schema";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const documented = new Set([...readme.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => `${m[1]} ${m[2]}`));

describe("README troubleshooting table", () => {
  it("lists every error code with its HTTP status", () => {
    const expected = Object.entries(ERROR_CODES).map(([code, spec]) => `${code} ${spec.status}`);
    expect([...documented].sort()).toEqual(expected.sort());
  });

  it("documents only codes that gatepass raises (src/ or cli/, beyond their definition)", () => {
    const root = new URL("../..", import.meta.url).pathname;
    const sources = ["src", "cli"]
      .flatMap((dir) => readdirSync(path.join(root, dir), { recursive: true, encoding: "utf8" }).map((file) => path.join(dir, file)))
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

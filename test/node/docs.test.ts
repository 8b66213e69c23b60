// The README's troubleshooting table documents every stable error code, and nothing that no longer exists.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../src/errors";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const documented = new Set([...readme.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => `${m[1]} ${m[2]}`));

describe("README troubleshooting table", () => {
  it("lists every error code with its HTTP status", () => {
    const expected = Object.entries(ERROR_CODES).map(([code, spec]) => `${code} ${spec.status}`);
    expect([...documented].sort()).toEqual(expected.sort());
  });
});

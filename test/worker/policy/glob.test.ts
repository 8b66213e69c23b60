import { describe, expect, it } from "vitest";
import { MAX_CLAIM_VALUE_LENGTH, MAX_PATTERN_LENGTH } from "../../../src/limits";
import { compileGlob, patternProblem } from "../../../src/policy/claim-glob";

const matches = (pattern: string, value: string) => compileGlob(pattern).matches(value);

describe("segment globs", () => {
  it("compares patterns without wildcards exactly", () => {
    const m = compileGlob("platform/infra");
    expect(m.exact).toBe(true);
    expect(m.matches("platform/infra")).toBe(true);
    expect(m.matches("platform/infra-evil")).toBe(false);
    expect(m.matches("platform/infra/sub")).toBe(false);
    expect(m.matches("Platform/infra")).toBe(false);
    expect(m.matches("xplatform/infra")).toBe(false);
  });

  it("keeps * within one segment and anchors both ends", () => {
    expect(matches("platform/*", "platform/infra")).toBe(true);
    expect(matches("platform/*", "platform/a/b")).toBe(false);
    expect(matches("platform/*", "platform-evil/infra")).toBe(false);
    expect(matches("release/*", "release/1.0")).toBe(true);
    expect(matches("release/*", "release/1.0/hotfix")).toBe(false);
    expect(matches("v*", "v1.2.3")).toBe(true);
    expect(matches("v*", "xv1")).toBe(false);
    expect(matches("*-prod", "eu-prod")).toBe(true);
    expect(matches("*-prod", "eu-prod-evil")).toBe(false);
    expect(matches("a*b*c", "aXbYc")).toBe(true);
    expect(matches("a*b*c", "abcab")).toBe(false);
    expect(matches("a*a", "a")).toBe(false);
  });

  it("lets ** span zero or more whole segments, never part of a look-alike segment", () => {
    expect(matches("platform/**", "platform/infra")).toBe(true);
    expect(matches("platform/**", "platform/a/b/c")).toBe(true);
    expect(matches("platform/**", "platform")).toBe(true);
    expect(matches("platform/**", "platform-evil")).toBe(false);
    expect(matches("platform/**", "platform-evil/infra")).toBe(false);
    expect(matches("platform/infra/**", "platform/infra-evil")).toBe(false);
    expect(matches("platform/infra/**", "platform/infra-evil/x")).toBe(false);
    expect(matches("**/infra", "a/b/infra")).toBe(true);
    expect(matches("**/infra", "a/b/infra-evil")).toBe(false);
    expect(matches("a/**/b", "a/b")).toBe(true);
    expect(matches("a/**/b", "a/x/y/b")).toBe(true);
    expect(matches("a/**/b", "a/x/y/bb")).toBe(false);
    expect(matches("a/**/b/*", "a/x/b/y")).toBe(true);
    expect(matches("a/**/b/*", "a/x/b")).toBe(false);
  });

  it("refuses malformed or oversized patterns", () => {
    expect(patternProblem("")).toMatch(/empty/);
    expect(patternProblem("a**")).toMatch(/whole path segment/);
    expect(patternProblem("a/***/b")).toMatch(/whole path segment/);
    expect(patternProblem("x".repeat(MAX_PATTERN_LENGTH + 1))).toMatch(/limited/);
    expect(patternProblem("platform/**")).toBeUndefined();
    expect(() => compileGlob("a**")).toThrow();
  });

  it("never matches values longer than the claim cap", () => {
    expect(matches("*", "a".repeat(MAX_CLAIM_VALUE_LENGTH))).toBe(true);
    expect(matches("*", "a".repeat(MAX_CLAIM_VALUE_LENGTH + 1))).toBe(false);
  });

  // Backtracking matchers need ~2^n steps for these and would blow the test timeout; ours are
  // O(pattern × value). (The timeout is the measure: workerd's clock stands still between I/O.)
  it("stays fast on backtracking-shaped inputs (ReDoS)", { timeout: 2_000 }, () => {
    const cases: [string, string][] = [
      [`${"*a".repeat(60)}b`, "a".repeat(MAX_CLAIM_VALUE_LENGTH)],
      [`${"**/a/".repeat(40)}b`, "a/".repeat(500) + "c"],
      [`${"**/*a*/".repeat(30)}z`, "aa/".repeat(340)],
    ];
    for (let i = 0; i < 20; i++) {
      for (const [pattern, value] of cases) {
        expect(pattern.length).toBeLessThanOrEqual(MAX_PATTERN_LENGTH);
        expect(matches(pattern, value)).toBe(false);
      }
    }
  });
});

// One token, one spelling: base64url must be canonical, or flipping the unused low bits of a
// segment's last character yields a second "valid" token with a different hash (found by fuzzing).
import { describe, expect, it } from "vitest";
import { decodeBase64url } from "../../../src/verify/encoding";
import { createHarness, expectCode, standinIssuer } from "./harness";

/** The base64url character whose value differs from `c` only in its lowest bit. */
const flipLowBit = (c: string): string => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  return alphabet[alphabet.indexOf(c) ^ 1]!;
};

describe("canonical base64url", () => {
  it("refuses spellings with non-zero unused bits", () => {
    expect([...decodeBase64url("AA")!]).toEqual([0]);
    expect(decodeBase64url("AB")).toBeUndefined();
    expect([...decodeBase64url("AAA")!]).toEqual([0, 0]);
    expect(decodeBase64url("AAB")).toBeUndefined();
  });

  it("refuses a valid token whose last signature character was re-spelled", async () => {
    const h = createHarness();
    const issuer = await standinIssuer(h);
    const token = await issuer.token();
    await expect(h.verifier.verify(token, [issuer.config], h.env, h.waitUntil)).resolves.toMatchObject({ issuer: issuer.name });
    // RS256-2048 signatures are 256 bytes: 342 characters, the last carrying 4 unused bits.
    const respelled = token.slice(0, -1) + flipLowBit(token.at(-1)!);
    await expectCode(h.verifier.verify(respelled, [issuer.config], h.env, h.waitUntil), "token_malformed");
  });
});

// One token, one spelling: base64url must be canonical, or flipping the unused low bits of a
// segment's last character yields a second "valid" token with a different hash (found by fuzzing).
// Likewise the decoded bytes must be valid UTF-8: a lenient decoder maps different bytes to U+FFFD.
import { Buffer } from "node:buffer";
import { describe, expect, it } from "vitest";
import { decodeBase64url } from "../../../src/encoding";
import { gitlabClaims, signBytes } from "../../support/tokens";
import { AUDIENCE, createHarness, expectCode, standinIssuer } from "./harness";

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
    await expect(h.verifier.verify(token, [issuer.config], h.env, h.waitUntil)).resolves.toMatchObject({
      issuer: issuer.name,
    });
    // RS256-2048 signatures are 256 bytes: 342 characters, the last carrying 4 unused bits.
    const respelled = token.slice(0, -1) + flipLowBit(token.at(-1)!);
    await expectCode(h.verifier.verify(respelled, [issuer.config], h.env, h.waitUntil), "token_malformed");
  });
});

describe("strict UTF-8", () => {
  // latin1 writes each character as one byte: "\u00c3(" becomes C3 28, a lead byte without its continuation.
  const INVALID = "\u00c3(";
  const bytes = (value: unknown) => Buffer.from(JSON.stringify(value), "latin1");

  it("refuses a correctly signed token whose payload or header is not valid UTF-8", async () => {
    const h = createHarness();
    const issuer = await standinIssuer(h);
    const header = { alg: "RS256", typ: "JWT", kid: issuer.key.kid };
    const payload = gitlabClaims({ issuer: issuer.config.url, audience: AUDIENCE, now: h.now() });
    const verify = async (hdr: object, claims: object) =>
      h.verifier.verify(
        await signBytes(issuer.key.privateKey, bytes(hdr), bytes(claims)),
        [issuer.config],
        h.env,
        h.waitUntil,
      );
    await expect(verify(header, payload)).resolves.toMatchObject({ issuer: issuer.name });
    await expectCode(verify(header, { ...payload, project_path: `platform/${INVALID}` }), "token_malformed");
    await expectCode(verify({ ...header, x: INVALID }, payload), "token_malformed");
  });
});

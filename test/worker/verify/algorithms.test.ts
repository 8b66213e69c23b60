// The algorithm table: asymmetric algorithms only, each bound to its key type and curve, so neither
// "none", HMAC nor a key of another family can ever verify a signature.
import { describe, expect, it } from "vitest";
import { isSupportedAlgorithm, keyFitsAlgorithm, verifyParams } from "../../../src/verify/algorithms";

const NOT_ALGORITHMS = ["none", "HS256", "HS512", "RSA-OAEP", "es256", "toString", "__proto__", "constructor", ""];

describe("algorithms", () => {
  it.each(NOT_ALGORITHMS)("does not know %j", (alg) => {
    expect(isSupportedAlgorithm(alg)).toBe(false);
    expect(keyFitsAlgorithm(alg, { kty: "RSA" })).toBe(false);
    expect(() => verifyParams(alg)).toThrow(/unsupported algorithm/);
  });

  it.each([
    ["RS256", { kty: "RSA" }, true],
    ["PS512", { kty: "RSA" }, true],
    ["RS256", { kty: "EC", crv: "P-256" }, false],
    ["RS256", { kty: "oct" }, false],
    ["ES256", { kty: "EC", crv: "P-256" }, true],
    ["ES256", { kty: "EC", crv: "P-384" }, false],
    ["ES256", { kty: "EC" }, false],
    ["ES384", { kty: "EC", crv: "P-384" }, true],
    ["ES512", { kty: "EC", crv: "P-521" }, true],
    ["EdDSA", { kty: "OKP", crv: "Ed25519" }, true],
    ["EdDSA", { kty: "OKP", crv: "X25519" }, false],
    ["EdDSA", { kty: "EC", crv: "Ed25519" }, false],
  ] as const)("%s with %j fits: %s", (alg, key, fits) => {
    expect(keyFitsAlgorithm(alg, key)).toBe(fits);
  });

  it("verifies ECDSA with the hash its name says, and RSA-PSS with a salt as long as the hash", () => {
    expect(verifyParams("ES384")).toEqual({ name: "ECDSA", hash: "SHA-384" });
    expect(verifyParams("PS256")).toEqual({ name: "RSA-PSS", saltLength: 32 });
  });
});

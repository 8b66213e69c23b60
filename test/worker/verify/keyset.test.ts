// validatePublicJwks: what a pushed key set must be. Each refusal names its reason.
import { base64url } from "jose";
import { describe, expect, it } from "vitest";
import { isGatepassError } from "../../../src/errors";
import { MAX_JWKS_KEYS, MAX_RSA_BITS } from "../../../src/limits";
import { usablePublicKeys, validatePublicJwks } from "../../../src/issuer-keys/key-set-validation";
import { createTestKey, jwksOf } from "../../support/tokens";

function refusal(input: unknown): string {
  try {
    validatePublicJwks(input);
  } catch (err) {
    if (isGatepassError(err) && err.code === "jwks_invalid") return err.description;
    throw err;
  }
  throw new Error("expected jwks_invalid, but the key set was accepted");
}

async function rsaJwk(bits: number): Promise<JsonWebKey> {
  const pair = (await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  return {
    ...((await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey),
    kid: `rsa-${bits}`,
  } as JsonWebKey;
}

describe("validatePublicJwks", () => {
  it("accepts RSA, EC and Ed25519 public keys and keeps only their public members", async () => {
    const rsa = await createTestKey("RS256");
    const ec = await createTestKey("ES256");
    const ed = await createTestKey("EdDSA");
    const input = { keys: [{ ...rsa.publicJwk, x5c: ["MIIB"], ext: true }, ec.publicJwk, ed.publicJwk] };
    const { keys } = validatePublicJwks(input);
    expect(keys.map((k) => k.kid)).toEqual([rsa.kid, ec.kid, ed.kid]);
    expect(Object.keys(keys[0]!).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
    expect(keys[1]).toEqual({
      kty: "EC",
      kid: ec.kid,
      crv: "P-256",
      x: ec.publicJwk.x,
      y: ec.publicJwk.y,
      alg: "ES256",
      use: "sig",
    });
  });

  it("accepts a 4096-bit RSA key", async () => {
    expect(validatePublicJwks({ keys: [await rsaJwk(4096)] }).keys).toHaveLength(1);
  });

  it.each(["d", "p", "q", "dp", "dq", "qi"])("refuses a key with the private member %s", async (member) => {
    const key = await createTestKey("RS256");
    const privateJwk = (await crypto.subtle.exportKey("jwk", key.privateKey)) as unknown as Record<string, unknown>;
    expect(refusal({ keys: [{ ...key.publicJwk, [member]: privateJwk[member] }] })).toContain(
      `private member "${member}"`,
    );
  });

  it("refuses symmetric keys", () => {
    expect(refusal({ keys: [{ kty: "oct", kid: "h", k: "c2VjcmV0" }] })).toContain('private member "k"');
    expect(refusal({ keys: [{ kty: "oct", kid: "h" }] })).toContain('kty "oct"');
  });

  it("refuses RSA keys under 2048 bits", async () => {
    expect(refusal({ keys: [await rsaJwk(1024)] })).toContain("1024 bits");
  });

  it(`refuses RSA keys over ${MAX_RSA_BITS} bits (verification cost grows with the size)`, () => {
    const modulus = (bytes: number) => base64url.encode(new Uint8Array(bytes).fill(0xff));
    expect(
      validatePublicJwks({ keys: [{ kty: "RSA", kid: "max", n: modulus(MAX_RSA_BITS / 8), e: "AQAB" }] }).keys,
    ).toHaveLength(1);
    expect(refusal({ keys: [{ kty: "RSA", kid: "huge", n: modulus(MAX_RSA_BITS / 8 + 1), e: "AQAB" }] })).toContain(
      `${MAX_RSA_BITS + 8} bits`,
    );
  });

  it("refuses keys without a kid, or with an empty, oversized or duplicate kid", async () => {
    const key = await createTestKey();
    const { kid: _kid, ...noKid } = key.publicJwk;
    expect(refusal({ keys: [noKid] })).toContain("needs a kid");
    expect(refusal({ keys: [{ ...key.publicJwk, kid: "" }] })).toContain("needs a kid");
    expect(refusal({ keys: [{ ...key.publicJwk, kid: "k".repeat(129) }] })).toContain("needs a kid");
    expect(refusal({ keys: [key.publicJwk, key.publicJwk] })).toContain("more than once");
  });

  it("refuses keys meant for something other than signatures", async () => {
    const key = await createTestKey();
    expect(refusal({ keys: [{ ...key.publicJwk, use: "enc" }] })).toContain('use "enc"');
    expect(refusal({ keys: [{ ...key.publicJwk, key_ops: ["encrypt"] }] })).toContain("key_ops");
    expect(refusal({ keys: [{ ...key.publicJwk, alg: "HS256" }] })).toContain(
      'alg "HS256"; only asymmetric signature algorithms are accepted',
    );
    expect(refusal({ keys: [{ ...key.publicJwk, alg: 256 }] })).toContain(
      "only asymmetric signature algorithms are accepted",
    );
    expect(refusal({ keys: [{ ...key.publicJwk, alg: "ES256" }] })).toContain("does not fit");
  });

  it("refuses malformed curve keys", async () => {
    const ec = await createTestKey("ES256");
    expect(refusal({ keys: [{ ...ec.publicJwk, crv: "secp256k1" }] })).toContain("unsupported curve");
    expect(refusal({ keys: [{ ...ec.publicJwk, x: "AAAA" }] })).toContain("32-byte x");
    expect(refusal({ keys: [{ ...ec.publicJwk, y: undefined }] })).toContain("32-byte y");
    expect(refusal({ keys: [{ ...ec.publicJwk, x: `${ec.publicJwk.x}=` }] })).toContain("32-byte x");
    expect(refusal({ keys: [{ ...ec.publicJwk, y: "AAAA" }] })).toContain("32-byte y");
  });

  it("refuses an alg that names another curve than the key's", async () => {
    const p384 = await createTestKey("ES384");
    expect(refusal({ keys: [{ ...p384.publicJwk, alg: "ES256" }] })).toContain("does not fit");
  });

  it("refuses an unusable RSA exponent or a non-base64url modulus", async () => {
    const key = await createTestKey();
    expect(refusal({ keys: [{ ...key.publicJwk, e: "AAE" }] })).toContain("exponent");
    expect(refusal({ keys: [{ ...key.publicJwk, e: "AAAC" }] })).toContain("exponent");
    expect(refusal({ keys: [{ ...key.publicJwk, e: "AQAC" }] })).toContain("exponent"); // 65538: even
    expect(refusal({ keys: [{ ...key.publicJwk, n: `${key.publicJwk.n}+/` }] })).toContain("n and e");
  });

  it("refuses what is not a JWKS, an empty set, and too many keys", async () => {
    const key = await createTestKey();
    for (const input of [null, [], "keys", { keys: {} }, { key: [] }]) expect(refusal(input)).toContain('"keys" array');
    expect(refusal({ keys: [] })).toContain("no keys");
    expect(
      refusal({ keys: Array.from({ length: MAX_JWKS_KEYS + 1 }, (_, i) => ({ ...key.publicJwk, kid: `k${i}` })) }),
    ).toContain(`at most ${MAX_JWKS_KEYS}`);
    expect(refusal({ keys: ["x"] })).toContain("not a JSON object");
  });
});

describe("usablePublicKeys (fetched sets)", () => {
  it("keeps the valid keys and reports the dropped ones", async () => {
    const good = await createTestKey();
    const { keys, dropped } = usablePublicKeys({
      keys: [{ kty: "oct", kid: "h", k: "c2VjcmV0" }, ...jwksOf(good).keys, good.publicJwk],
    });
    expect(keys.map((k) => k.kid)).toEqual([good.kid]);
    expect(dropped).toHaveLength(2);
  });
});

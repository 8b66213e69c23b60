import { describe, expect, it } from "vitest";
import { readConfig } from "../../../src/config";
import { GatepassError } from "../../../src/errors";
import { PREVIOUS_KEY_PUBLISH_SECONDS } from "../../../src/limits";
import {
  KeyRing,
  parseSigningKeySecret,
  publicJwkOf,
  type StoredKey,
} from "../../../src/signing-keys/signing-key-secret";
import {
  addAlgorithms,
  generateSecret,
  generateStoredKey,
  rotateSecret,
} from "../../../src/signing-keys/signing-key-rotation";
import { Signer } from "../../../src/signing-keys/isolate-signer";
import { deps, testSecret } from "./fixtures";
import { env } from "cloudflare:test";

const NOW = 1_800_000_000;
const PRIVATE = ["d", "p", "q", "dp", "dq", "qi", "k"];

function withKeys(keys: unknown[]): string {
  return JSON.stringify({ keys });
}

async function code(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    return err instanceof GatepassError ? err.code : `not a GatepassError: ${String(err)}`;
  }
  return undefined;
}

describe("signing key secret", () => {
  it("accepts a generated secret and publishes only public members", async () => {
    const secret = await testSecret();
    const ring = await KeyRing.import(parseSigningKeySecret(JSON.stringify(secret)));
    const published = ring.published(NOW);
    expect(published).toHaveLength(4);
    for (const jwk of published) {
      for (const member of PRIVATE) expect(jwk).not.toHaveProperty(member);
      expect(Object.keys(jwk).sort()).toEqual(
        jwk.kty === "EC" ? ["alg", "crv", "kid", "kty", "use", "x", "y"] : ["alg", "e", "kid", "kty", "n", "use"],
      );
    }
    expect(ring.algorithms()).toEqual(["ES256", "RS256"]);
    expect(ring.signingKey("ES256").kid).toBe(
      secret.keys.find((k) => k.alg === "ES256" && k.status === "current")!.kid,
    );
  });

  it.each([
    ["not JSON", "{", /not JSON/],
    ["wrong shape", JSON.stringify({ key: [] }), /must be/],
    ["no keys", withKeys([]), /no current ES256/],
  ])("refuses %s", (_name, text, message) => {
    expect(() => parseSigningKeySecret(text)).toThrow(message);
  });

  it("refuses a public-only key, a duplicate kid, two current keys, bad kids and missing retired_at", async () => {
    const current = await generateStoredKey("ES256", "current", NOW);
    const { d: _d, ...publicOnly } = current;
    expect(() => parseSigningKeySecret(withKeys([publicOnly]))).toThrow(/\.d missing/);
    expect(() => parseSigningKeySecret(withKeys([current, { ...current, status: "next" }]))).toThrow(/duplicate kid/);
    const other = await generateStoredKey("ES256", "current", NOW);
    expect(() => parseSigningKeySecret(withKeys([current, other]))).toThrow(/more than one current/);
    expect(() => parseSigningKeySecret(withKeys([{ ...current, kid: "a b" }]))).toThrow(/kid/);
    expect(() => parseSigningKeySecret(withKeys([current, { ...other, status: "previous" }]))).toThrow(/retired_at/);
    expect(() => parseSigningKeySecret(withKeys([{ ...current, alg: "HS256" }]))).toThrow(/alg/);
    expect(() => parseSigningKeySecret(withKeys([{ ...current, crv: "P-384" }]))).toThrow(/P-256/);
  });

  it("refuses an RS256 key set without a current RS256 key", async () => {
    const es = await generateStoredKey("ES256", "current", NOW);
    const rsNext = await generateStoredKey("RS256", "next", NOW);
    expect(() => parseSigningKeySecret(withKeys([es, rsNext]))).toThrow(/RS256 keys but no current RS256 key/);
  });

  it("refuses keys with a malformed member, naming the member", async () => {
    const es = await generateStoredKey("ES256", "current", NOW);
    const rs = await generateStoredKey("RS256", "current", NOW);
    const cases: [unknown, RegExp][] = [
      [null, /keys\[1\] is not an object/],
      [{ ...es, kid: "es-next", status: "pending" }, /status must be current, next or previous/],
      [{ ...es, kid: "es-next", status: "next", created_at: "2026-01-01" }, /created_at must be an integer/],
      [{ ...es, kid: "es-next", status: "next", y: undefined }, /\.y missing/],
      [{ ...rs, kty: "EC" }, /RS256 needs kty RSA/],
      [{ ...rs, e: "" }, /n and e required/],
    ];
    for (const [entry, message] of cases) {
      expect(() => parseSigningKeySecret(withKeys([es, entry]))).toThrow(message);
    }
  });

  it("refuses RSA keys below 2048 bits", async () => {
    const pair = (await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
    const es = await generateStoredKey("ES256", "current", NOW);
    expect(() =>
      parseSigningKeySecret(withKeys([es, { ...jwk, kid: "small", alg: "RS256", status: "current", created_at: NOW }])),
    ).toThrow(/2048/);
  });

  it("publishes a previous key only until its window ends", async () => {
    const current = await generateStoredKey("ES256", "current", NOW);
    const previous: StoredKey = { ...(await generateStoredKey("ES256", "previous", NOW - 100)), retired_at: NOW };
    const ring = await KeyRing.import(parseSigningKeySecret(withKeys([current, previous])));
    expect(ring.published(NOW + PREVIOUS_KEY_PUBLISH_SECONDS - 1).map((k) => k.kid)).toContain(previous.kid);
    expect(ring.published(NOW + PREVIOUS_KEY_PUBLISH_SECONDS).map((k) => k.kid)).toEqual([current.kid]);
    expect(ring.signingKey("ES256").kid).toBe(current.kid);
  });

  it("has no RS256 signing key unless the secret holds one", async () => {
    const ring = await KeyRing.import(await generateSecret(["ES256"], NOW));
    expect(() => ring.signingKey("RS256")).toThrow(
      expect.objectContaining({
        code: "signing_unavailable",
        description: expect.stringContaining("(gatepass keys add --alg RS256)"),
      }),
    );
  });

  it("publicJwkOf drops private members even if the key carried extra ones", async () => {
    const key = { ...(await generateStoredKey("ES256", "current", NOW)), extra: "secret-ish" } as StoredKey;
    expect(JSON.stringify(publicJwkOf(key))).not.toMatch(/"d"|extra/);
  });
});

describe("rotation", () => {
  it("promotes next, retires current, generates a new next, keeps previous keys still in their window", async () => {
    const first = await generateSecret(["ES256"], NOW);
    const [current, next] = [
      first.keys.find((k) => k.status === "current")!,
      first.keys.find((k) => k.status === "next")!,
    ];
    const second = await rotateSecret(first, NOW + 3600);
    expect(second.keys.find((k) => k.status === "current")!.kid).toBe(next.kid);
    expect(second.keys.find((k) => k.status === "previous")).toMatchObject({
      kid: current.kid,
      retired_at: NOW + 3600,
    });
    const newNext = second.keys.find((k) => k.status === "next")!;
    expect([current.kid, next.kid]).not.toContain(newNext.kid);

    const third = await rotateSecret(second, NOW + 3600 + 600);
    expect(
      third.keys
        .filter((k) => k.status === "previous")
        .map((k) => k.kid)
        .sort(),
    ).toEqual([current.kid, next.kid].sort());
    const fourth = await rotateSecret(third, NOW + 3600 + 600 + PREVIOUS_KEY_PUBLISH_SECONDS);
    // current's window (retired at NOW+3600) has ended: dropped; next's (retired at NOW+4200) has too.
    expect(fourth.keys.filter((k) => k.status === "previous").map((k) => k.kid)).toEqual([newNext.kid]);
  });

  it("refuses to promote a next key that relying parties may not have seen, unless forced", async () => {
    const secret = await generateSecret(["ES256"], NOW);
    await expect(rotateSecret(secret, NOW + 10)).rejects.toThrow(/--force/);
    await expect(rotateSecret(secret, NOW + 10, { force: true })).resolves.toBeDefined();
  });

  it("adds a current and a next key for a missing algorithm and keeps every key the secret had", async () => {
    const secret = await generateSecret(["ES256"], NOW);
    const added = await addAlgorithms(secret, ["RS256"], NOW + 60);
    expect(added.keys.filter((k) => k.alg === "ES256")).toEqual(secret.keys);
    expect(
      added.keys
        .filter((k) => k.alg === "RS256")
        .map((k) => k.status)
        .sort(),
    ).toEqual(["current", "next"]);
    const ring = await KeyRing.import(added);
    expect(ring.signingKey("ES256").kid).toBe(secret.keys.find((k) => k.status === "current")!.kid);
    expect(ring.signingKey("RS256").alg).toBe("RS256");
  });

  it("adds no key for an algorithm the secret already has", async () => {
    const secret = await generateSecret(["ES256", "RS256"], NOW);
    await expect(addAlgorithms(secret, ["RS256"], NOW + 60)).rejects.toThrow(
      /already has RS256 keys; `gatepass keys rotate` replaces them/,
    );
  });

  it("refuses a secret without a next key", async () => {
    const secret = await generateSecret(["ES256"], NOW);
    const onlyCurrent = { keys: secret.keys.filter((k) => k.status === "current") };
    await expect(rotateSecret(onlyCurrent, NOW + 3600)).rejects.toThrow(/no next ES256/);
  });
});

describe("Signer", () => {
  const baseEnv = { ...env, GATEPASS_ISSUER: "https://gatepass.example.com" };

  it("fails closed without a secret in production", async () => {
    const config = readConfig({ ...baseEnv, GATEPASS_ENV: "production", GATEPASS_SIGNING_KEYS: undefined });
    expect(await code(new Signer(deps()).keyRing(config))).toBe("signing_unavailable");
  });

  it("fails closed on an invalid secret, even in development", async () => {
    const config = readConfig({ ...baseEnv, GATEPASS_ENV: "development", GATEPASS_SIGNING_KEYS: '{"keys":[]}' });
    expect(await code(new Signer(deps()).keyRing(config))).toBe("signing_unavailable");
  });

  it("generates ephemeral ES256 and RS256 keys in a local run (development, issuer on loopback) without a secret", async () => {
    const config = readConfig({
      ...baseEnv,
      GATEPASS_ISSUER: "http://127.0.0.1:8787",
      GATEPASS_ENV: "development",
      GATEPASS_SIGNING_KEYS: undefined,
    });
    const ring = await new Signer(deps()).keyRing(config);
    expect(ring.algorithms()).toEqual(["ES256", "RS256"]);
  });

  it("fails closed without a secret when a deployed Worker was left in development mode (public issuer URL)", async () => {
    const config = readConfig({ ...baseEnv, GATEPASS_ENV: "development", GATEPASS_SIGNING_KEYS: undefined });
    expect(await code(new Signer(deps()).keyRing(config))).toBe("signing_unavailable");
  });

  it("imports the secret once per isolate", async () => {
    const config = readConfig({ ...baseEnv, GATEPASS_SIGNING_KEYS: JSON.stringify(await testSecret()) });
    const signer = new Signer(deps());
    const first = signer.keyRing(config);
    expect(signer.keyRing(config)).toBe(first);
    expect(await first).toBe(await signer.keyRing(config));
  });
});

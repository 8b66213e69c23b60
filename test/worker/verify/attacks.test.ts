// The known JWT attacks that concern verification, each asserting its error code (the policy-side
// ones, pattern-matching blow-up and rules without project scope, belong to the policy tests).
import { Buffer } from "node:buffer";
import { env } from "cloudflare:test";
import { base64url } from "jose";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  CLOCK_SKEW_SECONDS,
  MAX_CLAIM_ARRAY_LENGTH,
  MAX_CLAIM_VALUE_LENGTH,
  MAX_KID_LENGTH,
  MAX_TOKEN_BYTES,
} from "../../../src/limits";
import { setIssuerScenario } from "../../support/standins/issuer";
import {
  assembleToken,
  createTestKey,
  gitlabClaims,
  jwksOf,
  signBytes,
  signRaw,
  signToken,
  splitToken,
  withHash,
} from "../../support/tokens";
import { tokenDigest } from "../../../src/verify/verifier";
import {
  AUDIENCE,
  createHarness,
  expectCode,
  expectUnverified,
  issuerConfig,
  standinIssuer,
  uniqueName,
  type Harness,
  type StandinIssuer,
} from "./harness";

let h: Harness;
let iss: StandinIssuer;

beforeEach(async () => {
  h = createHarness();
  iss = await standinIssuer(h);
  // Warm the key cache so each attack below is judged on its own, not on a cold fetch.
  await h.verifier.verify(await iss.token(), [iss.config], h.env, h.waitUntil);
  await h.settle();
  h.resetCounters();
});

const verify = (token: string, issuers = [iss.config]) => h.verifier.verify(token, issuers, h.env, h.waitUntil);
const claims = (overrides: Record<string, unknown> = {}) => ({
  ...gitlabClaims({ issuer: iss.config.url, audience: AUDIENCE, now: h.now() }),
  ...overrides,
});

describe("1. alg none", () => {
  it.each(["none", "None", "NONE", "nOnE"])("refuses alg %s", async (alg) => {
    await expectCode(verify(assembleToken({ alg, typ: "JWT", kid: iss.key.kid }, claims(), "")), "token_malformed");
    await expectUnverified(
      verify(assembleToken({ alg, typ: "JWT", kid: iss.key.kid }, claims(), "AAAA")),
      "algorithm_not_allowed",
    );
  });

  it.each([
    ["no alg", {}],
    ["an empty alg", { alg: "" }],
    ["a non-string alg", { alg: ["RS256"] }],
  ])("refuses a header with %s as malformed", async (_name, alg) => {
    await expectCode(
      verify(assembleToken({ typ: "JWT", kid: iss.key.kid, ...alg }, claims(), "AAAA")),
      "token_malformed",
    );
  });
});

describe("2. algorithm confusion", () => {
  it("refuses HS256 signed with the issuer's public key as the HMAC secret", async () => {
    const secret = new TextEncoder().encode(JSON.stringify(iss.key.publicJwk));
    const hmacKey = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const header = { alg: "HS256", typ: "JWT", kid: iss.key.kid };
    const unsigned = assembleToken(header, claims()).slice(0, -1);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, new TextEncoder().encode(unsigned)));
    await expectUnverified(verify(`${unsigned}.${base64url.encode(mac)}`), "algorithm_not_allowed");
  });

  it("refuses a symmetric alg even when an issuer is misconfigured to list it", async () => {
    const misconfigured = { ...iss.config, algorithms: ["RS256", "HS256"] };
    await expectUnverified(
      verify(assembleToken({ alg: "HS256", kid: iss.key.kid }, claims(), "AAAA"), [misconfigured]),
      "algorithm_not_allowed",
    );
  });

  it("takes the allowed algorithms from the issuer, not the header (RS512 with the right key is refused)", async () => {
    const rs512 = await signRaw(
      await withHash(iss.key, "SHA-512"),
      { alg: "RS512", typ: "JWT", kid: iss.key.kid },
      claims(),
    );
    await expectUnverified(verify(rs512), "algorithm_not_allowed");
    // Allowed by the issuer, it is still refused: the published key says alg RS256.
    await expectUnverified(verify(rs512, [{ ...iss.config, algorithms: ["RS256", "RS512"] }]), "signature_invalid");
  });

  it("refuses a token whose alg does not fit the key its kid names", async () => {
    const both = { ...iss.config, algorithms: ["RS256", "ES256"] };
    const ec = await createTestKey("ES256", { kid: iss.key.kid });
    await expectUnverified(verify(await signToken(ec, claims()), [both]), "signature_invalid");
  });

  it("refuses an RS256 token naming an EC key published without alg (the key type decides)", async () => {
    const ec = await createTestKey("ES256");
    const { alg: _alg, ...withoutAlg } = ec.publicJwk;
    const es = await standinIssuer(h, {
      key: ec,
      config: { algorithms: ["RS256", "ES256"] },
      scenario: { jwks: { keys: [withoutAlg] } },
    });
    expect(await verify(await es.token(), [es.config])).toMatchObject({ issuer: es.name });
    const rsa = await createTestKey("RS256", { kid: ec.kid });
    await expectUnverified(verify(await es.token({}, rsa), [es.config]), "signature_invalid");
  });
});

describe("3. signature shape", () => {
  it("refuses an empty signature", async () => {
    const [header, payload] = splitToken(await iss.token());
    await expectCode(verify(`${header}.${payload}.`), "token_malformed");
  });

  it("refuses a stripped signature and any segment count but three", async () => {
    const [header, payload, signature] = splitToken(await iss.token());
    await expectCode(verify(`${header}.${payload}`), "token_malformed");
    await expectCode(verify(`${header}.${payload}.${signature}.${signature}`), "token_malformed");
    await expectCode(verify(header), "token_malformed");
  });

  it("refuses a truncated, extended or altered signature", async () => {
    const [header, payload, signature] = splitToken(await iss.token());
    await expectUnverified(verify(`${header}.${payload}.${signature.slice(0, -2)}`), "signature_invalid");
    await expectUnverified(verify(`${header}.${payload}.${signature}AAAA`), "signature_invalid");
    const flipped = (signature[10] === "A" ? "B" : "A") as string;
    await expectUnverified(
      verify(`${header}.${payload}.${signature.slice(0, 10)}${flipped}${signature.slice(11)}`),
      "signature_invalid",
    );
  });

  it("refuses a payload changed after signing", async () => {
    const [header, , signature] = splitToken(await iss.token());
    const forged = assembleToken({}, claims({ project_path: "platform/other" })).split(".")[1];
    await expectUnverified(verify(`${header}.${forged}.${signature}`), "signature_invalid");
  });

  it("refuses non-base64url segments", async () => {
    const [header, payload, signature] = splitToken(await iss.token());
    await expectCode(verify(`${header}=.${payload}.${signature}`), "token_malformed");
    await expectCode(verify(`${header}.${payload}.${signature.replace(/.$/, "+")}`), "token_malformed");
  });
});

describe("4. ECDSA zero signature (CVE-2022-21449)", () => {
  it("refuses r = s = 0 for an ES256 issuer", async () => {
    const ec = await createTestKey("ES256");
    const name = uniqueName("es");
    await setIssuerScenario(env.STANDIN_URL, name, { jwks: jwksOf(ec) });
    const config = issuerConfig(name, { algorithms: ["ES256"] });
    const payload = { ...gitlabClaims({ issuer: config.url, audience: AUDIENCE, now: h.now() }) };
    expect(await h.verifier.verify(await signToken(ec, payload), [config], h.env, h.waitUntil)).toMatchObject({
      issuer: name,
    });
    const zero = assembleToken({ alg: "ES256", typ: "JWT", kid: ec.kid }, payload, new Uint8Array(64));
    await expectUnverified(h.verifier.verify(zero, [config], h.env, h.waitUntil), "signature_invalid");
  });
});

describe("4b. ECDSA signature malleability", () => {
  // (r, s) and (r, n - s) are both valid ECDSA signatures of the same input. Issuers do not normalise s
  // (WebCrypto, OpenSSL and Go sign high-S half of the time), so refusing high-S would refuse valid
  // tokens; instead a token is identified by its signing input, which both spellings share.
  const ORDERS = {
    ES256: { crv: "P-256", n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n, bytes: 32 },
    ES384: {
      crv: "P-384",
      n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
      bytes: 48,
    },
  } as const;

  it.each(Object.keys(ORDERS) as (keyof typeof ORDERS)[])(
    "a token and its %s high-S twin get one token_sha256",
    async (alg) => {
      const { n, bytes } = ORDERS[alg];
      const key = await createTestKey(alg);
      const name = uniqueName("ecmal");
      await setIssuerScenario(env.STANDIN_URL, name, { jwks: jwksOf(key) });
      const config = issuerConfig(name, { algorithms: [alg] });
      const token = await signToken(key, gitlabClaims({ issuer: config.url, audience: AUDIENCE, now: h.now() }));
      const [header, payload, signature] = splitToken(token);
      const raw = base64url.decode(signature);
      const toInt = (part: Uint8Array) => BigInt(`0x${[...part].map((b) => b.toString(16).padStart(2, "0")).join("")}`);
      const twinS = n - toInt(raw.subarray(bytes));
      const twin = `${header}.${payload}.${base64url.encode(Uint8Array.from([...raw.subarray(0, bytes), ...Buffer.from(twinS.toString(16).padStart(bytes * 2, "0"), "hex")]))}`;
      expect(twin).not.toBe(token);

      const original = await h.verifier.verify(token, [config], h.env, h.waitUntil);
      const variant = await h.verifier.verify(twin, [config], h.env, h.waitUntil);
      expect(variant.claims.jti).toBe(original.claims.jti); // the twin verifies: it is the same token
      expect(variant.tokenSha256).toBe(original.tokenSha256);
      expect(await tokenDigest(twin)).toBe(original.tokenSha256); // a refused spelling is audited under the same hash
    },
  );
});

describe("5–6. keys named by the token itself", () => {
  it("refuses an embedded jwk header, even one that signed the token", async () => {
    const attacker = await createTestKey("RS256", { kid: iss.key.kid });
    await expectCode(verify(await signToken(attacker, claims(), { jwk: attacker.publicJwk })), "header_invalid");
  });

  it.each(["jku", "x5u"])("refuses %s and never dereferences it", async (member) => {
    const url = `${env.STANDIN_URL}/issuer/${iss.name}/oauth/discovery/keys?from=${member}`;
    await expectCode(verify(await signToken(iss.key, claims(), { [member]: url })), "header_invalid");
    expect(h.counters.fetches).toEqual([]);
  });

  it("refuses x5c certificates in the header", async () => {
    await expectCode(verify(await signToken(iss.key, claims(), { x5c: ["MIIB"] })), "header_invalid");
  });

  it("a token signed by another key with the issuer's kid does not verify", async () => {
    const attacker = await createTestKey("RS256", { kid: iss.key.kid });
    await expectUnverified(verify(await signToken(attacker, claims())), "signature_invalid");
  });
});

describe("7. kid tricks", () => {
  it.each([
    ["path traversal", "../../../etc/passwd"],
    ["SQL", "' OR '1'='1' --"],
    ["KV key of another issuer", `issuer:${"other"}`],
  ])("treats a %s kid as an opaque unknown key", async (_label, kid) => {
    await expectUnverified(verify(await iss.token({}, iss.key, { kid })), "key_unknown");
  });

  it("refuses an empty, missing, non-string or oversized kid", async () => {
    await expectCode(verify(await iss.token({}, iss.key, { kid: "" })), "header_invalid");
    await expectCode(verify(await iss.token({}, iss.key, { kid: undefined })), "header_invalid");
    await expectCode(verify(await iss.token({}, iss.key, { kid: 7 })), "header_invalid");
    await expectCode(verify(await iss.token({}, iss.key, { kid: "k".repeat(MAX_KID_LENGTH + 1) })), "header_invalid");
  });

  it("a pinned issuer refuses other kids before any key lookup", async () => {
    const pinned = { ...iss.config, allowed_kids: ["the-ci-key"] };
    await expectUnverified(verify(await iss.token(), [pinned]), "key_unknown");
    await expectUnverified(verify(await iss.token({}, iss.key, { kid: "unknown" }), [pinned]), "key_unknown");
    expect(h.counters).toEqual({ fetches: [], kvGets: 0, kvPuts: 0 });
    expect(await verify(await iss.token(), [{ ...iss.config, allowed_kids: [iss.key.kid] }])).toMatchObject({
      issuer: iss.name,
    });
  });
});

describe("9. crit and other processing instructions", () => {
  it.each([
    ["crit", ["exp"]],
    ["b64", false],
    ["cty", "JWT"],
    ["zip", "DEF"],
    ["enc", "A256GCM"],
  ])("refuses a %s header", async (member, value) => {
    const header = { alg: "RS256", typ: "JWT", kid: iss.key.kid, [member]: value };
    await expectCode(verify(await signRaw(iss.key.privateKey, header, claims())), "header_invalid");
  });

  it("the same raw signer produces tokens that verify (so the refusals above are the header's)", async () => {
    const header = { alg: "RS256", typ: "JWT", kid: iss.key.kid };
    expect(await verify(await signRaw(iss.key.privateKey, header, claims()))).toMatchObject({ issuer: iss.name });
  });

  it("refuses a typ other than JWT (cross-JWT confusion)", async () => {
    await expectCode(verify(await iss.token({}, iss.key, { typ: "at+jwt" })), "header_invalid");
    expect(await verify(await iss.token({}, iss.key, { typ: "jwt" }))).toMatchObject({ issuer: iss.name });
  });
});

describe("10. unknown or look-alike issuers", () => {
  it.each([
    ["an unknown host", "https://gitlab.evil.example"],
    ["a look-alike path", null],
    ["a look-alike host", null],
    ["http instead of the configured scheme", null],
    ["a userinfo trick", null],
  ])("refuses %s without any KV read or network request", async (label, fixed) => {
    const url = new URL(iss.config.url);
    const candidates: Record<string, string> = {
      "a look-alike path": `${iss.config.url}-evil`,
      "a look-alike host": `${url.protocol}//${url.hostname}.evil.example${url.pathname}`,
      "http instead of the configured scheme": iss.config.url.replace(/^http:/, "https:"),
      "a userinfo trick": `${url.protocol}//${url.host}@evil.example${url.pathname}`,
    };
    const issValue = fixed ?? candidates[label]!;
    // Signed correctly with the real key, so only the issuer check can refuse it.
    await expectUnverified(verify(await signToken(iss.key, claims({ iss: issValue }))), "issuer_unknown");
    expect(h.counters).toEqual({ fetches: [], kvGets: 0, kvPuts: 0 });
  });

  it("refuses a token without iss, or with a non-string iss", async () => {
    const noIss = claims();
    delete noIss.iss;
    await expectUnverified(verify(await signToken(iss.key, noIss)), "issuer_unknown");
    await expectUnverified(verify(await signToken(iss.key, claims({ iss: [iss.config.url] }))), "issuer_unknown");
  });
});

describe("11. audience", () => {
  it("accepts aud as a string or as an array containing a configured audience", async () => {
    expect(await verify(await iss.token({ aud: AUDIENCE }))).toMatchObject({ issuer: iss.name });
    expect(await verify(await iss.token({ aud: ["https://vault.example", AUDIENCE] }))).toMatchObject({
      issuer: iss.name,
    });
  });

  it("refuses another audience, an empty list, or no aud", async () => {
    await expectCode(verify(await iss.token({ aud: "https://vault.example" })), "audience_mismatch");
    await expectCode(verify(await iss.token({ aud: ["https://vault.example"] })), "audience_mismatch");
    await expectCode(verify(await iss.token({ aud: [] })), "audience_mismatch");
    await expectCode(verify(await iss.token({ aud: undefined })), "audience_mismatch");
  });

  it.each([[[AUDIENCE, 5]], [[AUDIENCE, { aud: AUDIENCE }]], [5], [{ aud: AUDIENCE }]])(
    "refuses aud %j, which is not a string or a list of strings",
    async (aud) => {
      await expect(verify(await iss.token({ aud }))).rejects.toMatchObject({
        code: "claims_invalid",
        description: "The token's aud must be a string or an array of strings.",
      });
    },
  );

  it.each([
    ["a longer host", `${AUDIENCE}.evil`],
    ["a trailing slash", `${AUDIENCE}/`],
    ["another case", AUDIENCE.toUpperCase()],
    ["a strict prefix", AUDIENCE.slice(0, -1)],
  ])("matches aud exactly: refuses %s, as a string or in an array", async (_label, aud) => {
    await expectCode(verify(await iss.token({ aud })), "audience_mismatch");
    await expectCode(verify(await iss.token({ aud: ["https://vault.example", aud] })), "audience_mismatch");
  });

  it("refuses aud of the wrong type", async () => {
    await expectCode(verify(await iss.token({ aud: 42 })), "claims_invalid");
    await expectCode(verify(await iss.token({ aud: [AUDIENCE, 42] })), "claims_invalid");
  });
});

describe("12. times", () => {
  it("refuses an expired token, allowing 60 s of skew", async () => {
    const now = h.now();
    await expectCode(verify(await iss.token({ iat: now - 400, nbf: now - 405, exp: now - 61 })), "token_expired");
    expect(await verify(await iss.token({ iat: now - 400, nbf: now - 405, exp: now - 59 }))).toMatchObject({
      expiresAt: now - 59,
    });
  });

  it("counts exp exactly at the edge of the skew as expired", async () => {
    const now = h.now();
    await expectCode(
      verify(await iss.token({ iat: now - 400, nbf: now - 405, exp: now - CLOCK_SKEW_SECONDS })),
      "token_expired",
    );
  });

  it("refuses nbf or iat in the future beyond the skew", async () => {
    const now = h.now();
    await expectCode(verify(await iss.token({ nbf: now + 61 })), "token_not_yet_valid");
    await expectCode(verify(await iss.token({ iat: now + 61, nbf: now, exp: now + 600 })), "token_not_yet_valid");
    expect(await verify(await iss.token({ iat: now + 30, nbf: now + 25, exp: now + 600 }))).toMatchObject({
      issuer: iss.name,
    });
  });

  it("refuses a token older than the issuer's maximum age, though not expired (GitLab tokens can live a month)", async () => {
    const now = h.now();
    const month = 30 * 24 * 3600;
    await expectCode(
      verify(await iss.token({ iat: now - 3600 - 61, nbf: now - 3666, exp: now + month })),
      "token_too_old",
    );
    const young = { ...iss.config, max_token_age_seconds: 600 };
    await expectCode(
      verify(await iss.token({ iat: now - 700, nbf: now - 705, exp: now + 600 }), [young]),
      "token_too_old",
    );
    expect(await verify(await iss.token({ iat: now - 500, nbf: now - 505, exp: now + 600 }), [young])).toMatchObject({
      issuer: iss.name,
    });
  });

  it("requires exp and iat as numbers", async () => {
    await expectCode(verify(await iss.token({ exp: undefined })), "claims_invalid");
    await expectCode(verify(await iss.token({ iat: undefined })), "claims_invalid");
    await expectCode(verify(await iss.token({ exp: String(h.now() + 300) })), "claims_invalid");
    await expectCode(verify(await iss.token({ exp: h.now() - 10, iat: h.now() })), "claims_invalid");
  });

  it("refuses an exp that JSON.parse reads as Infinity (1e400)", async () => {
    const payload = JSON.stringify(claims()).replace(/"exp":\d+/, '"exp":1e400');
    expect(JSON.parse(payload).exp).toBe(Infinity);
    const header = JSON.stringify({ alg: "RS256", typ: "JWT", kid: iss.key.kid });
    const encode = (text: string) => new TextEncoder().encode(text);
    await expectCode(verify(await signBytes(iss.key.privateKey, encode(header), encode(payload))), "claims_invalid");
  });
});

describe("13. claim type confusion", () => {
  it("refuses a payload that is not a JSON object", async () => {
    const header = { alg: "RS256", typ: "JWT", kid: iss.key.kid };
    await expectCode(
      verify(`${splitToken(assembleToken(header, {}))[0]}.${base64url.encode("[1,2]")}.AAAA`),
      "token_malformed",
    );
    await expectCode(
      verify(`${splitToken(assembleToken(header, {}))[0]}.${base64url.encode("not json")}.AAAA`),
      "token_malformed",
    );
    await expectCode(
      verify(`${base64url.encode('"RS256"')}.${splitToken(assembleToken(header, {}))[1]}.AAAA`),
      "token_malformed",
    );
  });

  it("refuses arrays or objects where GitLab sends strings", async () => {
    await expectCode(verify(await iss.token({ project_path: ["platform/infra", "platform/other"] })), "claims_invalid");
    await expectCode(verify(await iss.token({ ref: { name: "main" } })), "claims_invalid");
    await expectCode(verify(await iss.token({ groups_direct: ["platform", 7] })), "claims_invalid");
  });

  it("normalises booleans and numbers explicitly to GitLab's strings", async () => {
    const identity = await verify(
      await iss.token({ ref_protected: true, project_id: 1234, environment_protected: false }),
    );
    expect(identity.claims.ref_protected).toBe("true");
    expect(identity.claims.project_id).toBe("1234");
    expect(identity.claims.environment_protected).toBe("false");
  });
});

describe("14. size caps", () => {
  it("refuses a token over the size cap before parsing it", async () => {
    const huge = `${"a".repeat(MAX_TOKEN_BYTES)}.b.c`;
    await expectCode(verify(huge), "token_too_large");
  });

  it("refuses values and lists over their caps in claims gatepass reads; leaves out other claims over them", async () => {
    const tooMany = Array.from({ length: MAX_CLAIM_ARRAY_LENGTH + 1 }, (_, i) => `g${i}`);
    await expectCode(verify(await iss.token({ ref: "r".repeat(MAX_CLAIM_VALUE_LENGTH + 1) })), "claims_invalid");
    await expectCode(verify(await iss.token({ groups_direct: tooMany })), "claims_invalid");
    // A claim gatepass does not read never refuses the token; over the caps it is left out, so no rule matches on it.
    const identity = await verify(
      await iss.token({ custom_list: tooMany, custom_text: "x".repeat(MAX_CLAIM_VALUE_LENGTH + 1) }),
    );
    expect(identity.claims).not.toHaveProperty("custom_list");
    expect(identity.claims).not.toHaveProperty("custom_text");
  });
});

describe("15. small RSA keys", () => {
  it("never verifies with an RSA key under 2048 bits published by the issuer", async () => {
    const small = (await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey("jwk", small.publicKey)) as JsonWebKey;
    const name = uniqueName("small");
    await setIssuerScenario(env.STANDIN_URL, name, { jwks: { keys: [{ ...jwk, kid: "small", alg: "RS256" }] } });
    const config = issuerConfig(name);
    const payload = gitlabClaims({ issuer: config.url, audience: AUDIENCE, now: h.now() });
    const unsigned = assembleToken({ alg: "RS256", typ: "JWT", kid: "small" }, payload).slice(0, -1);
    const sig = new Uint8Array(
      await crypto.subtle.sign("RSASSA-PKCS1-v1_5", small.privateKey, new TextEncoder().encode(unsigned)),
    );
    // The only key is dropped as unusable, so the issuer has no keys at all.
    await expectCode(
      h.verifier.verify(`${unsigned}.${base64url.encode(sig)}`, [config], h.env, h.waitUntil),
      "jwks_unavailable",
    );
  });
});

describe("18. no token in errors or logs", () => {
  const spies: ReturnType<typeof vi.spyOn>[] = [];
  afterEach(() => spies.splice(0).forEach((spy) => spy.mockRestore()));

  it("never puts the raw token into an error or a log line", async () => {
    const lines: string[] = [];
    for (const method of ["log", "warn", "error"] as const) {
      spies.push(
        vi
          .spyOn(console, method)
          .mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" "))),
      );
    }
    const token = await iss.token({ aud: "https://elsewhere.example" });
    const tampered = `${token.slice(0, -6)}AAAAAA`;
    for (const candidate of [token, tampered, `${token}.extra`]) {
      const error = await verify(candidate).then(
        () => undefined,
        (err: unknown) => err as Error,
      );
      expect(error).toBeDefined();
      const [, payload, signature] = splitToken(candidate);
      expect(JSON.stringify({ message: error!.message, ...(error as object) })).not.toContain(payload);
      expect(error!.message).not.toContain(signature);
    }
    expect(lines.join("\n")).not.toContain(splitToken(token)[1]);
  });

  it("reports the SHA-256 of the token's signing input (header.payload), not the token", async () => {
    const token = await iss.token();
    const identity = await verify(token);
    const [header, payload, signature] = splitToken(token);
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${header}.${payload}`)),
    );
    expect(identity.tokenSha256).toBe([...digest].map((b) => b.toString(16).padStart(2, "0")).join(""));
    expect(await tokenDigest(token)).toBe(identity.tokenSha256);
    expect(JSON.stringify(identity)).not.toContain(signature);
  });
});

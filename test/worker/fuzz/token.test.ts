// Property-based fuzzing of Verifier.verify: whatever the token, verification settles quickly with
// either an identity or a GatepassError carrying a token-verification code, and it accepts a token
// only when an independent WebCrypto check says the issuer's own key signed exactly that signing
// input (and, for signed random claims, only when the claims pass a reference check).
import { env } from "cloudflare:test";
import fc from "fast-check";
import { Buffer } from "node:buffer";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { isGatepassError, type ErrorCode } from "../../../src/errors";
import { CLOCK_SKEW_SECONDS, MAX_TOKEN_BYTES } from "../../../src/limits";
import type { IssuerConfig, VerifiedIdentity } from "../../../src/types";
import { createTestKey, gitlabClaims, signRaw, signToken, type TestKey } from "../../support/tokens";
import { AUDIENCE, createHarness, standinIssuer, type Harness, type StandinIssuer } from "../verify/harness";
import { runs } from "./fuzz";

/** What verify may refuse with when its issuers' stand-in is up: the token-verification codes. */
const VERIFY_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "token_malformed",
  "token_too_large",
  "header_invalid",
  "token_unverified",
  "audience_mismatch",
  "audience_multiple",
  "token_expired",
  "token_not_yet_valid",
  "token_too_old",
  "claims_invalid",
  "not_a_ci_token",
  "legacy_token_refused",
]);
/** One verify must settle within this (warm path: well under a millisecond; a cold fetch: a few ms). */
const DEADLINE_MS = 2_000;

/** Independent of src/verify: how each test issuer's public key verifies. */
type ImportParams = Parameters<SubtleCrypto["importKey"]>[2];
type VerifyParams = Parameters<SubtleCrypto["verify"]>[0];
const WEBCRYPTO: Record<string, { import: ImportParams; verify: VerifyParams }> = {
  RS256: { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verify: "RSASSA-PKCS1-v1_5" },
  ES256: { import: { name: "ECDSA", namedCurve: "P-256" }, verify: { name: "ECDSA", hash: "SHA-256" } },
};

const B64URL = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"];
const encoder = new TextEncoder();
const b64 = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString("base64url");
const b64json = (value: unknown): string => b64(JSON.stringify(value) ?? "null");

let h: Harness;
let rs: StandinIssuer;
let es: StandinIssuer;
let issuers: IssuerConfig[];
let attackerRs: TestKey;
let attackerEs: TestKey;
let hmacKey: CryptoKey;
const publicKeys = new Map<StandinIssuer, CryptoKey>();
/** Valid tokens (checked in beforeAll) that the mutation properties start from. */
let valid: { issuer: StandinIssuer; token: string }[];

const stats = { accepted: 0, refused: new Map<string, number>(), slowestMs: 0 };

beforeAll(async () => {
  h = createHarness();
  rs = await standinIssuer(h, { prefix: "fuzz-rs" });
  es = await standinIssuer(h, {
    prefix: "fuzz-es",
    key: await createTestKey("ES256"),
    config: { algorithms: ["ES256"] },
  });
  issuers = [rs.config, es.config];
  // Same kids as the real keys, never published: what an attacker signs with.
  attackerRs = await createTestKey("RS256", { kid: rs.key.kid });
  attackerEs = await createTestKey("ES256", { kid: es.key.kid });
  // Algorithm confusion: the issuer's public JWK used as an HMAC secret.
  hmacKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(JSON.stringify(rs.key.publicJwk)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  for (const issuer of [rs, es]) {
    const params = WEBCRYPTO[issuer.key.alg]!;
    publicKeys.set(
      issuer,
      await crypto.subtle.importKey("jwk", issuer.key.publicJwk as JsonWebKey, params.import, false, ["verify"]),
    );
  }
  valid = [
    { issuer: rs, token: await rs.token() },
    { issuer: rs, token: await rs.token({ groups_direct: ["a", "b/c"], aud: [AUDIENCE, "other"] }) },
    { issuer: es, token: await es.token() },
  ];
  // Warm both key caches, and prove the starting tokens are accepted (else every property is vacuous).
  for (const { token, issuer } of valid) expect((await outcome(token)).accepted?.issuer).toBe(issuer.name);
  stats.accepted = 0;
});

afterEach(async () => {
  await h.settle();
  // Attacker-chosen headers (jku, x5u, random kids) never send gatepass anywhere but the configured
  // issuers, and a flood of unknown kids costs at most a reload per issuer per cooldown.
  for (const url of h.counters.fetches) expect(url.startsWith(`${env.STANDIN_URL}/issuer/fuzz-`)).toBe(true);
  expect(h.counters.fetches.length).toBeLessThanOrEqual(4);
  h.resetCounters();
  // Which outcomes this property reached (printed when it fails, or with --silent=false).
  console.log(
    expect.getState().currentTestName,
    JSON.stringify({
      accepted: stats.accepted,
      refused: Object.fromEntries(stats.refused),
      slowestMs: stats.slowestMs,
    }),
  );
  Object.assign(stats, { accepted: 0, refused: new Map(), slowestMs: 0 });
});

interface Outcome {
  accepted?: VerifiedIdentity;
  refused?: ErrorCode;
}

/** Runs verify with a deadline; anything but an identity or a known GatepassError fails the property. */
async function outcome(token: string): Promise<Outcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"hung">((resolve) => {
    timer = setTimeout(() => resolve("hung"), DEADLINE_MS);
  });
  const started = Date.now();
  try {
    const result = await Promise.race([h.verifier.verify(token, issuers, h.env, h.waitUntil), deadline]);
    if (result === "hung") throw new Error(`verify did not settle within ${DEADLINE_MS} ms`);
    stats.accepted++;
    return { accepted: result };
  } catch (err) {
    if (!isGatepassError(err))
      throw new Error(`verify failed with something other than a GatepassError: ${String(err)}`, { cause: err });
    if (!VERIFY_CODES.has(err.code)) throw new Error(`verify refused with unexpected code ${err.code}`, { cause: err });
    stats.refused.set(err.code, (stats.refused.get(err.code) ?? 0) + 1);
    return { refused: err.code };
  } finally {
    clearTimeout(timer);
    stats.slowestMs = Math.max(stats.slowestMs, Date.now() - started);
  }
}

/** The issuer whose published key verifies the token's signature over its exact signing input, if any. */
async function signerOf(token: string): Promise<StandinIssuer | undefined> {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  const [header, payload, signature] = parts as [string, string, string];
  let alg: unknown;
  try {
    alg = (JSON.parse(Buffer.from(header, "base64url").toString("utf8")) as { alg?: unknown }).alg;
  } catch {
    return undefined;
  }
  for (const issuer of [rs, es]) {
    if (alg !== issuer.key.alg) continue;
    const ok = await crypto.subtle.verify(
      WEBCRYPTO[issuer.key.alg]!.verify,
      publicKeys.get(issuer)!,
      Buffer.from(signature, "base64url"),
      encoder.encode(`${header}.${payload}`),
    );
    if (ok) return issuer;
  }
  return undefined;
}

/** The property shared by every generator: settle with a known outcome, and accept only what the issuer signed. */
async function neverAcceptsForgeries(token: string): Promise<Outcome> {
  const result = await outcome(token);
  if (result.accepted) {
    const signer = await signerOf(token);
    expect(signer, "accepted a token that no issuer key signed").toBeDefined();
    expect(result.accepted.issuer).toBe(signer!.name);
  }
  return result;
}

// ---- generators ----------------------------------------------------------------------------------

const b64Chars = (maxLength: number) => fc.string({ unit: fc.constantFrom(...B64URL), maxLength });
const tokenishChars = fc.string({
  unit: fc.constantFrom(...B64URL, ".", ".", "=", "+", "/", " ", "%", "\u00e9", "\u0000"),
  maxLength: 400,
});
const algArb = fc.oneof(
  fc.constantFrom(
    "RS256",
    "ES256",
    "RS384",
    "RS512",
    "PS256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
    "HS256",
    "HS512",
    "none",
    "None",
    "",
    "rs256",
  ),
  fc.string({ maxLength: 12 }),
);
const kidArb = (issuer: StandinIssuer) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(issuer.key.kid) },
    { weight: 1, arbitrary: fc.constantFrom(rs.key.kid, es.key.kid) },
    { weight: 1, arbitrary: fc.constantFrom("", " ", "../../etc/passwd", "x".repeat(129)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 140 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
  );
/** Headers an attacker would write for a token of this issuer: often its own alg and kid, any other alg,
 *  kid and typ, sometimes members that name keys or change processing. */
const headerArb = (issuer: StandinIssuer) =>
  fc
    .record(
      {
        alg: fc.oneof(
          { weight: 3, arbitrary: fc.constant(issuer.key.alg) },
          { weight: 3, arbitrary: algArb },
          { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
        ),
        kid: kidArb(issuer),
        typ: fc.oneof(
          { weight: 3, arbitrary: fc.constant("JWT") },
          { weight: 1, arbitrary: fc.constantFrom("jwt", "application/jwt", "JOSE", "at+jwt", "", 1) },
        ),
        extra: fc.oneof(
          { weight: 3, arbitrary: fc.constant({}) },
          {
            weight: 1,
            arbitrary: fc.dictionary(
              fc.constantFrom(
                "crit",
                "jku",
                "x5u",
                "jwk",
                "x5c",
                "b64",
                "cty",
                "zip",
                "enc",
                "x5t",
                "__proto__",
                "nonce",
              ),
              fc.jsonValue({ maxDepth: 2 }),
              { minKeys: 1, maxKeys: 2 },
            ),
          },
        ),
      },
      { requiredKeys: ["alg", "extra"] },
    )
    .map(({ extra, ...header }) => ({ ...extra, ...header }));
const CLAIM_NAMES = [
  "iss",
  "aud",
  "sub",
  "exp",
  "iat",
  "nbf",
  "jti",
  "project_id",
  "project_path",
  "pipeline_id",
  "job_id",
  "ref",
  "ref_type",
  "groups_direct",
  "namespace_path",
  "user_identities",
  "__proto__",
  "constructor",
];
/** Claim values of every JSON type plus the numeric edge cases and oversized strings. */
const claimValueArb = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    0,
    -1,
    1e308,
    -1e308,
    2 ** 53,
    1.5,
    "",
    "true",
    AUDIENCE,
    [AUDIENCE],
    [AUDIENCE, 1],
    "x".repeat(2_000),
  ),
  fc.integer({ min: -10_000, max: 10_000 }).map((offset) => ({ nowPlus: offset })),
);
/** A valid payload for the issuer with some claims replaced, removed or added; or a wholly random object. */
const claimsArb = (issuer: StandinIssuer) =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .dictionary(
          fc.oneof(fc.constantFrom(...CLAIM_NAMES), fc.string({ maxLength: 8 })),
          fc.option(claimValueArb, { nil: undefined }),
          { maxKeys: 3 },
        )
        .map((overrides) => withOverrides(issuer, overrides)),
    },
    { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }) },
  );

function withOverrides(issuer: StandinIssuer, overrides: Record<string, unknown>): Record<string, unknown> {
  const claims = gitlabClaims({ issuer: issuer.config.url, audience: AUDIENCE, now: h.now() });
  for (const [name, value] of Object.entries(overrides)) setClaim(claims, name, value);
  return claims;
}

/** Sets a claim as an own property (also `__proto__`); `{ nowPlus }` stands for a time near now (exp/iat/nbf edge cases). */
function setClaim(claims: object, name: string, value: unknown): void {
  const resolved =
    value !== null && typeof value === "object" && "nowPlus" in value
      ? h.now() + (value as { nowPlus: number }).nowPlus
      : value;
  Object.defineProperty(claims, name, { value: resolved, enumerable: true, writable: true, configurable: true });
}

// ---- properties ----------------------------------------------------------------------------------

describe("verify on arbitrary input", () => {
  it("refuses arbitrary strings with a known code, in bounded time", async () => {
    const strings = fc.oneof(
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.string({ unit: "grapheme", maxLength: 100 }),
      tokenishChars,
      fc.array(b64Chars(200), { maxLength: 6 }).map((parts) => parts.join(".")),
      fc
        .tuple(fc.integer({ min: MAX_TOKEN_BYTES - 3, max: MAX_TOKEN_BYTES + 3 }), fc.constantFrom("A", ".", "\u00e9"))
        .map(([n, c]) => c.repeat(n)),
    );
    await fc.assert(
      fc.asyncProperty(strings, async (token) => {
        expect((await neverAcceptsForgeries(token)).refused).toBeDefined();
      }),
      runs(1_000),
    );
  });

  it("refuses three arbitrary base64url segments (random text, bytes, JSON, attacker headers and claims)", async () => {
    const random = fc.oneof(
      b64Chars(120),
      fc.uint8Array({ maxLength: 300 }).map(b64),
      fc.jsonValue({ maxDepth: 3 }).map(b64json),
    );
    // Mostly well-formed headers and payloads, so refusals come from the deeper checks too.
    const segment = (structured: fc.Arbitrary<string>) =>
      fc.oneof({ weight: 1, arbitrary: random }, { weight: 2, arbitrary: structured });
    const signature = fc.oneof(b64Chars(400), fc.uint8Array({ minLength: 1, maxLength: 520 }).map(b64));
    const tokens = fc
      .constantFrom(rs, es)
      .chain((issuer) =>
        fc.tuple(segment(headerArb(issuer).map(b64json)), segment(claimsArb(issuer).map(b64json)), segment(signature)),
      )
      .map((parts) => parts.join("."));
    await fc.assert(
      fc.asyncProperty(tokens, async (token) => {
        expect((await neverAcceptsForgeries(token)).refused).toBeDefined();
      }),
      runs(1_000),
    );
  });
});

describe("verify on mutated valid tokens", () => {
  type Mutation =
    | { kind: "flip"; segment: number; at: number; xor: number }
    | { kind: "char"; at: number; char: string }
    | { kind: "delete"; at: number; length: number }
    | { kind: "insert"; at: number; text: string }
    | { kind: "truncate"; keep: number }
    | { kind: "swap"; a: number; b: number }
    | { kind: "claim"; name: string; value: unknown };
  const index = fc.nat({ max: 5_000 });
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({
      kind: fc.constant("flip" as const),
      segment: fc.nat({ max: 2 }),
      at: index,
      xor: fc.integer({ min: 1, max: 255 }),
    }),
    fc.record({ kind: fc.constant("char" as const), at: index, char: fc.constantFrom(...B64URL, ".", "=") }),
    fc.record({ kind: fc.constant("delete" as const), at: index, length: fc.integer({ min: 1, max: 8 }) }),
    fc.record({
      kind: fc.constant("insert" as const),
      at: index,
      text: fc.string({ unit: fc.constantFrom(...B64URL, "."), minLength: 1, maxLength: 8 }),
    }),
    fc.record({ kind: fc.constant("truncate" as const), keep: index }),
    fc.record({ kind: fc.constant("swap" as const), a: fc.nat({ max: 2 }), b: fc.nat({ max: 2 }) }),
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("claim" as const),
        name: fc.constantFrom(...CLAIM_NAMES),
        value: claimValueArb,
      }),
    },
  );

  function mutate(token: string, m: Mutation): string {
    const at = (length: number) => ("at" in m ? m.at % Math.max(length, 1) : 0);
    switch (m.kind) {
      case "flip": {
        // Flip bits in the decoded bytes of one segment and re-encode canonically.
        const parts = token.split(".");
        const bytes = Buffer.from(parts[m.segment] ?? "", "base64url");
        if (bytes.length === 0) return token;
        const i = at(bytes.length);
        bytes[i] = bytes[i]! ^ m.xor;
        parts[m.segment] = bytes.toString("base64url");
        return parts.join(".");
      }
      case "char": {
        const i = at(token.length);
        return token.slice(0, i) + m.char + token.slice(i + 1);
      }
      case "delete": {
        const i = at(token.length);
        return token.slice(0, i) + token.slice(i + m.length);
      }
      case "insert": {
        const i = at(token.length + 1);
        return token.slice(0, i) + m.text + token.slice(i);
      }
      case "truncate":
        return token.slice(0, m.keep % token.length);
      case "claim": {
        // Edit one claim in the payload JSON (still well-formed) and keep the old signature.
        const [header = "", payload = "", signature = ""] = token.split(".");
        let claims: unknown;
        try {
          claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
        } catch {
          return token;
        }
        if (claims === null || typeof claims !== "object") return token;
        setClaim(claims, m.name, m.value);
        return `${header}.${b64json(claims)}.${signature}`;
      }
      case "swap": {
        const parts = token.split(".");
        [parts[m.a], parts[m.b]] = [parts[m.b]!, parts[m.a]!];
        return parts.join(".");
      }
    }
  }

  it("accepts a mutated token only if it still carries the issuer's signature over its exact signing input", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 2 }),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        async (which, mutations) => {
          const token = mutations.reduce(mutate, valid[which]!.token);
          await neverAcceptsForgeries(token);
        },
      ),
      runs(1_500),
    );
  });

  it("never accepts a swapped alg, random kid or extra header members unless the issuer's key signed that header", async () => {
    type Signer = "original-signature" | "issuer-key" | "attacker-key" | "hmac-with-public-jwk" | "random-bytes";
    const signers = fc.constantFrom<Signer>(
      "original-signature",
      "issuer-key",
      "attacker-key",
      "hmac-with-public-jwk",
      "random-bytes",
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...valid).chain((start) => fc.tuple(fc.constant(start), headerArb(start.issuer))),
        signers,
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        async ([{ issuer, token: original }, header], signer, randomBytes) => {
          const payloadSegment = original.split(".")[1]!;
          const unsigned = `${b64json(header)}.${payloadSegment}`;
          let signature: string;
          if (signer === "original-signature") signature = original.split(".")[2]!;
          else if (signer === "random-bytes") signature = b64(randomBytes);
          else if (signer === "hmac-with-public-jwk")
            signature = b64(new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, encoder.encode(unsigned))));
          else {
            const key = signer === "issuer-key" ? issuer.key : issuer === rs ? attackerRs : attackerEs;
            const claims = JSON.parse(Buffer.from(payloadSegment, "base64url").toString("utf8")) as Record<
              string,
              unknown
            >;
            const signed = await signRaw(key.privateKey, header, claims);
            expect(signed.startsWith(`${unsigned}.`)).toBe(true); // same header and payload text as `unsigned`
            signature = signed.split(".")[2]!;
          }
          const result = await neverAcceptsForgeries(`${unsigned}.${signature}`);
          if (signer !== "issuer-key" && signer !== "original-signature") expect(result.refused).toBeDefined();
        },
      ),
      runs(600),
    );
  });
});

describe("verify on random claims signed by the issuer", () => {
  /** Reference claim rules (README/DESIGN): what a properly signed token must carry to be accepted. */
  function claimsAcceptable(payload: Record<string, unknown>, issuer: StandinIssuer, now: number): boolean {
    const { iss, aud, sub, exp, iat, nbf } = payload;
    const audOk =
      aud === AUDIENCE || (Array.isArray(aud) && aud.includes(AUDIENCE) && aud.every((a) => typeof a === "string"));
    const time = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
    const ciClaim = (v: unknown) =>
      (typeof v === "string" && v.length > 0) || typeof v === "number" || typeof v === "boolean";
    return (
      iss === issuer.config.url &&
      audOk &&
      typeof sub === "string" &&
      sub.length > 0 &&
      time(exp) &&
      time(iat) &&
      exp > now - CLOCK_SKEW_SECONDS &&
      iat <= now + CLOCK_SKEW_SECONDS &&
      now - iat <= issuer.config.max_token_age_seconds + CLOCK_SKEW_SECONDS &&
      exp >= iat &&
      (nbf === undefined || (time(nbf) && nbf <= now + CLOCK_SKEW_SECONDS)) &&
      ciClaim(payload.project_id) &&
      ciClaim(payload.pipeline_id) &&
      ciClaim(payload.job_id)
    );
  }

  it("accepts a properly signed token only when its claims pass the reference checks, normalised to strings", async () => {
    const cases = fc.constantFrom(rs, es).chain((issuer) => fc.tuple(fc.constant(issuer), claimsArb(issuer)));
    await fc.assert(
      fc.asyncProperty(cases, async ([issuer, payload]) => {
        const token = await signToken(issuer.key, payload);
        const result = await neverAcceptsForgeries(token);
        if (!result.accepted) return;
        expect(claimsAcceptable(payload, issuer, h.now()), JSON.stringify(payload)).toBe(true);
        for (const value of Object.values(result.accepted.claims)) {
          expect(typeof value === "string" || (Array.isArray(value) && value.every((e) => typeof e === "string"))).toBe(
            true,
          );
        }
        // The signing input (header.payload), which an ECDSA signature's twin shares.
        const digest = Buffer.from(
          await crypto.subtle.digest("SHA-256", encoder.encode(token.slice(0, token.lastIndexOf(".")))),
        ).toString("hex");
        expect(result.accepted.tokenSha256).toBe(digest);
      }),
      runs(500),
    );
    // The generator keeps many payloads valid, so the acceptance branch is exercised, not just refusals.
    expect(stats.accepted).toBeGreaterThan(50);
  });
});

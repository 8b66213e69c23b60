// The layered key cache (memory → KV → network), counted: every fetch and KV call goes through the
// harness's counting wrappers, so the warm-path and flood claims are measured, not assumed.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  JWKS_DEFAULT_FRESH_SECONDS,
  JWKS_FAILURE_BACKOFF_SECONDS,
  JWKS_MAX_REDIRECTS,
  JWKS_MAX_FRESH_SECONDS,
  JWKS_MAX_STALE_SECONDS,
  JWKS_MIN_FRESH_SECONDS,
  JWKS_REFRESH_AHEAD_SECONDS,
  JWKS_UNKNOWN_KID_COOLDOWN_SECONDS,
  PUSHED_JWKS_RECHECK_SECONDS,
} from "../../../src/limits";
import {
  jwksStorageKey,
  parseStoredKeySet,
  pushedKeySet,
  type StoredKeySet,
} from "../../../src/issuer-keys/stored-key-set";
import type { PublicJwk } from "../../../src/issuer-keys/key-set-validation";
import { Verifier } from "../../../src/verify/verifier";
import { issuerStats, setIssuerScenario } from "../../support/standins/issuer";
import { createTestKey, jwksOf } from "../../support/tokens";
import {
  createHarness,
  expectCode,
  expectUnverified,
  issuerConfig,
  standinIssuer,
  uniqueName,
  type Harness,
} from "./harness";

const storedRecord = async (name: string) => JSON.parse((await env.JWKS.get(jwksStorageKey(name)))!) as StoredKeySet;
const verifyWith = (h: Harness, token: string, issuers: Parameters<Harness["verifier"]["verify"]>[1]) =>
  h.verifier.verify(token, issuers, h.env, h.waitUntil);

describe("layers", () => {
  it("cold: discovery + JWKS once, stored in KV; warm: zero fetches and zero KV reads", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    expect(h.counters.fetches).toEqual([
      `${iss.config.url}/.well-known/openid-configuration`,
      `${iss.config.url}/oauth/discovery/keys`,
    ]);
    expect(h.counters.kvGets).toBe(1);
    expect(h.counters.kvPuts).toBe(1);
    expect((await storedRecord(iss.name)).keys.map((k) => k.kid)).toEqual([iss.key.kid]);

    h.resetCounters();
    for (let i = 0; i < 20; i++) await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    expect(h.counters).toEqual({ fetches: [], kvGets: 0, kvPuts: 0 });
  });

  it("a new isolate reads KV once and does not touch the network", async () => {
    const first = createHarness();
    const iss = await standinIssuer(first);
    await verifyWith(first, await iss.token(), [iss.config]);
    await first.settle();

    const second = createHarness();
    await verifyWith(second, await iss.token(), [iss.config]);
    await verifyWith(second, await iss.token(), [iss.config]);
    await second.settle();
    expect(second.counters).toEqual({ fetches: [], kvGets: 1, kvPuts: 0 });
  });

  it("concurrent cold requests share one fetch (single-flight)", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const tokens = await Promise.all(Array.from({ length: 20 }, () => iss.token()));
    await Promise.all(tokens.map((token) => verifyWith(h, token, [iss.config])));
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });
  });

  it("imports each key once: a warm verify reuses the CryptoKey", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    await verifyWith(h, await iss.token(), [iss.config]);
    const subtle = crypto.subtle;
    let imports = 0;
    const original = subtle.importKey.bind(subtle);
    subtle.importKey = ((...args: Parameters<SubtleCrypto["importKey"]>) => {
      imports++;
      return original(...args);
    }) as SubtleCrypto["importKey"];
    try {
      for (let i = 0; i < 5; i++) await verifyWith(h, await iss.token(), [iss.config]);
    } finally {
      subtle.importKey = original;
    }
    expect(imports).toBe(0);
  });

  it("ignores a stored record written for another URL or key source", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const stranger = await createTestKey();
    const record: StoredKeySet = {
      issuer_url: "https://elsewhere.example",
      source: "discovery",
      keys: [stranger.publicJwk as PublicJwk],
      fetched_at: h.now(),
      fresh_until: h.now() + 600,
    };
    await env.JWKS.put(jwksStorageKey(iss.name), JSON.stringify(record));
    await verifyWith(h, await iss.token(), [iss.config]);
    expect(h.counters.fetches).toHaveLength(2);
  });

  it("ignores a stored record fetched from another jwks_uri: keys from a URL the admin moved away from stop verifying", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const config = {
      ...iss.config,
      keys: { source: "jwks_uri" as const, jwks_uri: `${iss.config.url}/oauth/discovery/keys` },
    };
    const stranger = await createTestKey();
    const fromOldUrl: StoredKeySet = {
      issuer_url: config.url,
      source: "jwks_uri",
      jwks_uri: "https://old-keys.example/jwks",
      keys: [stranger.publicJwk as PublicJwk],
      fetched_at: h.now(),
      fresh_until: h.now() + 600,
    };
    await env.JWKS.put(jwksStorageKey(iss.name), JSON.stringify(fromOldUrl));
    await expectUnverified(verifyWith(h, await iss.token({}, stranger), [config]), "key_unknown");
    expect(h.counters.fetches).toEqual([config.keys.jwks_uri]);
    await h.settle();
    expect(await storedRecord(iss.name)).toMatchObject({
      jwks_uri: config.keys.jwks_uri,
      keys: [expect.objectContaining({ kid: iss.key.kid })],
    });

    // The record the Worker wrote for the configured URL is used by the next isolate.
    const next = createHarness();
    expect(await verifyWith(next, await iss.token(), [config])).toMatchObject({ issuer: iss.name });
    expect(next.counters).toEqual({ fetches: [], kvGets: 1, kvPuts: 0 });
  });

  it("ignores a stored record of another key source: keys pushed before the issuer moved to discovery", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const stranger = await createTestKey();
    await env.JWKS.put(
      jwksStorageKey(iss.name),
      JSON.stringify(pushedKeySet(iss.config.url, [stranger.publicJwk as PublicJwk], h.now())),
    );
    await expectUnverified(verifyWith(h, await iss.token({}, stranger), [iss.config]), "key_unknown");
    expect(h.counters.fetches).toHaveLength(2);
  });
});

describe("stored records (parseStoredKeySet)", () => {
  const discovery = issuerConfig("stored-disc");
  const direct = issuerConfig("stored-uri", {
    keys: { source: "jwks_uri", jwks_uri: "https://keys.example.com/jwks" },
  });
  const recordFor = async (issuer: typeof discovery, overrides: Record<string, unknown> = {}) => {
    const key = await createTestKey();
    return {
      issuer_url: issuer.url,
      source: issuer.keys.source,
      keys: [key.publicJwk],
      fetched_at: 1_800_000_000,
      fresh_until: 1_800_000_600,
      ...(issuer.keys.source === "jwks_uri" ? { jwks_uri: issuer.keys.jwks_uri } : {}),
      ...overrides,
    };
  };

  it("reads back what was stored, with the last refresh error", async () => {
    const record = await recordFor(direct, { last_error: "HTTP 500", last_error_at: 1_800_000_300 });
    expect(parseStoredKeySet(JSON.stringify(record), direct)).toEqual({
      ...record,
      keys: [expect.objectContaining({ kid: record.keys[0]!.kid })],
    });
    const plain = await recordFor(discovery);
    const read = parseStoredKeySet(JSON.stringify(plain), discovery)!;
    expect(read).not.toHaveProperty("jwks_uri");
    expect(read).not.toHaveProperty("last_error");
  });

  it.each([
    ["no fetched_at", { fetched_at: undefined }],
    ["a fresh_until that is not a number", { fresh_until: "soon" }],
    ["no keys", { keys: [] }],
    ["keys that are not a list", { keys: "none" }],
  ])("ignores a record with %s", async (_name, overrides) => {
    expect(parseStoredKeySet(JSON.stringify(await recordFor(discovery, overrides)), discovery)).toBeUndefined();
  });

  it("ignores text that is not a record", () => {
    for (const text of [null, "", "not json", "[]", "null"]) expect(parseStoredKeySet(text, discovery)).toBeUndefined();
  });
});

describe("freshness", () => {
  it.each([
    ["max-age=600", 600],
    ["public, max-age=86400", JWKS_MAX_FRESH_SECONDS],
    ["max-age=5", JWKS_MIN_FRESH_SECONDS],
    ["no-store", JWKS_MIN_FRESH_SECONDS],
    [null, JWKS_DEFAULT_FRESH_SECONDS],
    ["private", JWKS_DEFAULT_FRESH_SECONDS],
  ])("honours Cache-Control %s within bounds (fresh for %i s)", async (cacheControl, seconds) => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { cacheControl } });
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    const record = await storedRecord(iss.name);
    expect(record.fresh_until - record.fetched_at).toBe(seconds);
  });

  it("serves stale keys at once and refreshes in the background", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { cacheControl: "max-age=600" } });
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: jwksOf(iss.key), faults: { discovery: "hang" } });
    h.advance(601);
    h.resetCounters();
    const started = Date.now();
    await verifyWith(h, await iss.token(), [iss.config]);
    expect(Date.now() - started).toBeLessThan(500); // did not wait on the hanging issuer
    expect(h.counters.fetches).toEqual([]);
    await h.settle(); // the background reload: KV, then the (hanging) issuer until the timeout
    expect(h.counters.kvGets).toBe(1);
    expect(h.counters.fetches).toEqual([`${iss.config.url}/.well-known/openid-configuration`]);
  });

  it("picks up keys refreshed by another isolate (or the cron) from KV before going to the network", async () => {
    const a = createHarness();
    const iss = await standinIssuer(a, { scenario: { cacheControl: "max-age=600" } });
    await verifyWith(a, await iss.token(), [iss.config]);
    await a.settle();
    const b = createHarness();
    b.advance(601);
    await b.verifier.refresh([iss.config], b.env); // writes a newer record
    a.advance(601);
    a.resetCounters();
    await verifyWith(a, await iss.token(), [iss.config]);
    await a.settle();
    expect(a.counters.kvGets).toBe(1);
    expect(a.counters.fetches).toEqual([]);
  });
});

describe("issuer down", () => {
  it("keeps serving cached keys until the maximum staleness, then fails closed", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: jwksOf(iss.key), faults: { discovery: "fail" } });

    h.advance(JWKS_MAX_FRESH_SECONDS + 1);
    expect(await verifyWith(h, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });
    await h.settle();
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 0 });

    // Backoff: within it, no further attempts.
    h.advance(JWKS_FAILURE_BACKOFF_SECONDS - 1);
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    expect((await issuerStats(env.STANDIN_URL, iss.name)).discovery).toBe(1);

    h.advance(JWKS_MAX_STALE_SECONDS);
    const error = await verifyWith(h, await iss.token(), [iss.config]).catch(
      (err: unknown) => err as { code: string; headers: Record<string, string> },
    );
    expect(error).toMatchObject({ code: "jwks_unavailable" });
    expect((error as { headers: Record<string, string> }).headers["Retry-After"]).toBe(
      String(JWKS_FAILURE_BACKOFF_SECONDS),
    );
  });

  it("recovers when the issuer answers again", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { faults: { jwks: "fail" } } });
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: jwksOf(iss.key) });
    // Still in backoff: no request reaches the issuer.
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 0, jwks: 0 });
    h.advance(JWKS_FAILURE_BACKOFF_SECONDS);
    expect(await verifyWith(h, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });
  });
});

describe("unknown kid", () => {
  it("a flood of random kids causes at most one refetch per cooldown, and known keys keep verifying", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: jwksOf(iss.key) }); // resets the counts
    h.advance(1); // keys fetched this very second are not refetched for a kid

    const flood = async () => {
      const tokens = await Promise.all(
        Array.from({ length: 50 }, () => iss.token({}, iss.key, { kid: crypto.randomUUID() })),
      );
      const results = await Promise.allSettled(tokens.map((token) => verifyWith(h, token, [iss.config])));
      expect(
        results.every(
          (r) =>
            r.status === "rejected" && (r.reason as { conceals?: { code: string } }).conceals?.code === "key_unknown",
        ),
      ).toBe(true);
    };
    await flood();
    await h.settle();
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });
    expect(await verifyWith(h, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });

    h.advance(JWKS_UNKNOWN_KID_COOLDOWN_SECONDS - 1);
    await flood();
    await h.settle();
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });

    h.advance(1);
    await flood();
    await h.settle();
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 2, jwks: 2 });
  });

  it("a cold request with an unknown kid fetches once, not twice", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    await expectUnverified(
      verifyWith(h, await iss.token({}, iss.key, { kid: "not-published" }), [iss.config]),
      "key_unknown",
    );
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });
  });

  it("a rotation (old kid removed, new kid added): the first new-kid token is refused, one background refetch, its retry verifies", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    const next = await createTestKey();
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: jwksOf(next) });
    h.advance(30);
    const rotated = await iss.token({}, next);
    await expectUnverified(verifyWith(h, rotated, [iss.config]), "key_unknown");
    await h.settle();
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });
    // The same token again, as the CI template's retry sends it.
    expect(await verifyWith(h, rotated, [iss.config])).toMatchObject({ issuer: iss.name });
    await expectUnverified(verifyWith(h, await iss.token(), [iss.config]), "key_unknown");
  });

  it("a cold isolate whose KV record predates a rotation refetches in the background for the new kid", async () => {
    const a = createHarness();
    const iss = await standinIssuer(a);
    await verifyWith(a, await iss.token(), [iss.config]);
    await a.settle(); // stored in KV
    const next = await createTestKey();
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: jwksOf(next) });
    const b = createHarness();
    b.advance(30);
    const rotated = await iss.token({}, next);
    await expectUnverified(verifyWith(b, rotated, [iss.config]), "key_unknown");
    await b.settle();
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });
    expect(await verifyWith(b, rotated, [iss.config])).toMatchObject({ issuer: iss.name });
  });

  it("a refusal for an unknown kid never waits on the issuer: the refetch it starts is still held when the refusal arrives", async () => {
    let release: (() => void) | undefined;
    let hold = false;
    let reached!: (url: string) => void;
    const fetchReached = new Promise<string>((resolve) => (reached = resolve));
    const h = createHarness({
      beforeFetch: (url) => {
        if (!hold) return Promise.resolve();
        reached(url);
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    const iss = await standinIssuer(h);
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    const next = await createTestKey();
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: jwksOf(next) });
    h.advance(30);
    hold = true;
    const rotated = await iss.token({}, next);
    // Were the refusal to wait for the refetch, this would never settle (the issuer is held) and the test would time out.
    await expectUnverified(verifyWith(h, rotated, [iss.config]), "key_unknown");
    // The refusal is out; the refetch it started (KV first, then the issuer) reaches the issuer and waits there.
    expect(await fetchReached).toBe(`${iss.config.url}/.well-known/openid-configuration`);
    hold = false;
    release!();
    await h.settle();
    expect(await verifyWith(h, rotated, [iss.config])).toMatchObject({ issuer: iss.name });
  });
});

describe("fetch hygiene", () => {
  it("rewrites a discovery jwks_uri on an internal host to the configured issuer's origin", async () => {
    const h = createHarness();
    const name = uniqueName("internal");
    const iss = await standinIssuer(h, {
      scenario: { discovery: { jwks_uri: `https://gitlab.internal.corp:8443/issuer/${name}/oauth/discovery/keys` } },
    });
    // standinIssuer picked its own name; point the discovery at the right path.
    await setIssuerScenario(env.STANDIN_URL, iss.name, {
      jwks: jwksOf(iss.key),
      discovery: { jwks_uri: `https://gitlab.internal.corp:8443/issuer/${iss.name}/oauth/discovery/keys` },
    });
    await verifyWith(h, await iss.token(), [iss.config]);
    expect(h.counters.fetches[1]).toBe(`${iss.config.url}/oauth/discovery/keys`);
    expect(h.counters.fetches.some((url) => url.includes("internal"))).toBe(false);
  });

  it.each(["ftp://gitlab.example", "file://"])(
    "refuses a discovery jwks_uri on %s without fetching its path from the issuer",
    async (base) => {
      const h = createHarness();
      const iss = await standinIssuer(h);
      // The path does serve the keys on the issuer's origin, so only the scheme check can refuse it.
      await setIssuerScenario(env.STANDIN_URL, iss.name, {
        jwks: jwksOf(iss.key),
        discovery: { jwks_uri: `${base}/issuer/${iss.name}/oauth/discovery/keys` },
      });
      await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
      expect(h.counters.fetches).toEqual([`${iss.config.url}/.well-known/openid-configuration`]);
      expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 0 });
      const [status] = await h.verifier.keyStatus([iss.config], h.env);
      expect(status!.last_error).toBe(`jwks_uri ${base}/issuer/${iss.name}/oauth/discovery/keys is not an http(s) URL`);
    },
  );

  it.each([[null], [42]])("refuses a discovery document whose jwks_uri is %j", async (jwksUri) => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: jwksOf(iss.key), discovery: { jwks_uri: jwksUri } });
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    expect(h.counters.fetches).toEqual([`${iss.config.url}/.well-known/openid-configuration`]);
    const [status] = await h.verifier.keyStatus([iss.config], h.env);
    expect(status!.last_error).toBe("the discovery document has no jwks_uri");
  });

  it("follows a redirect on the same origin", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { faults: { jwks: "redirect-same" } } });
    expect(await verifyWith(h, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });
    expect(h.counters.fetches.at(-1)).toBe(`${iss.config.url}/moved/keys`);
  });

  it("never follows a redirect to another host", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { faults: { jwks: "redirect-foreign" } } });
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    expect(h.counters.fetches.some((url) => url.includes("localhost"))).toBe(false);
    expect((await issuerStats(env.STANDIN_URL, iss.name)).jwks).toBe(1);
  });

  it(`follows at most ${JWKS_MAX_REDIRECTS} redirects`, async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { faults: { jwks: "redirect-loop" } } });
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    expect((await issuerStats(env.STANDIN_URL, iss.name)).jwks).toBe(1 + JWKS_MAX_REDIRECTS);
  });

  it.each([
    ["an oversized JWKS (Content-Length)", { jwks: "oversize" as const }],
    ["an oversized JWKS (streamed)", { jwks: "oversize-chunked" as const }],
    ["an oversized discovery document", { discovery: "oversize" as const }],
    ["a failing discovery", { discovery: "fail" as const }],
  ])("refuses %s", async (_label, faults) => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { faults } });
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
  });

  it.each([
    ["does not answer", "hang", /^fetching \S+ failed: no answer within 300 ms$/],
    ["starts an answer and never finishes it", "stall-body", /^reading \S+ failed: no answer within 300 ms$/],
    ["answers with a page that is not JSON", "not-json", /^\S+ did not answer with JSON$/],
  ] as const)("gives up, within the timeout, on an issuer that %s", async (_name, fault, reason) => {
    const h = createHarness({ fetchTimeoutMs: 300 });
    const iss = await standinIssuer(h, { scenario: { faults: { jwks: fault } } });
    const started = Date.now();
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    expect(Date.now() - started).toBeLessThan(2_000);
    const [status] = await h.verifier.keyStatus([iss.config], h.env);
    expect(status!.last_error).toMatch(reason);
  });

  it("refuses http:// issuers outside development before any key lookup, pushed keys included", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const production = { ...h.env, GATEPASS_ENV: "production" };
    await expectUnverified(
      h.verifier.verify(await iss.token(), [iss.config], production, h.waitUntil),
      "issuer_unknown",
    );
    const pushed = { ...iss.config, keys: { source: "pushed" as const } };
    await h.verifier.storePushedKeys(pushed, [iss.key.publicJwk as PublicJwk], h.env);
    h.resetCounters(); // the push itself reads the stored set (to retire removed keys)
    await expectUnverified(h.verifier.verify(await iss.token(), [pushed], production, h.waitUntil), "issuer_unknown");
    expect(h.counters).toMatchObject({ fetches: [], kvGets: 0 });
    expect(await h.verifier.verify(await iss.token(), [pushed], h.env, h.waitUntil)).toMatchObject({
      issuer: iss.name,
    }); // development
  });

  it("in development too, accepts http:// issuers and fetches http:// URLs only on loopback", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const offLoopback = { ...iss.config, url: "http://gitlab.internal.example" };
    const development = { ...h.env, GATEPASS_ENV: "development" };
    await expectUnverified(
      h.verifier.verify(await iss.token({ iss: offLoopback.url }), [offLoopback], development, h.waitUntil),
      "issuer_unknown",
    );
    const keysOffLoopback = {
      ...iss.config,
      keys: { source: "jwks_uri" as const, jwks_uri: "http://gitlab.internal.example/oauth/discovery/keys" },
    };
    await expectCode(
      h.verifier.verify(await iss.token(), [keysOffLoopback], development, h.waitUntil),
      "jwks_unavailable",
    );
    expect(h.counters.fetches).toEqual([]);
  });

  it("an explicit jwks_uri is fetched directly, without discovery", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const url = issuerConfig(iss.name).url;
    const config = { ...iss.config, keys: { source: "jwks_uri" as const, jwks_uri: `${url}/moved/keys` } };
    expect(await verifyWith(h, await iss.token(), [config])).toMatchObject({ issuer: iss.name });
    expect(h.counters.fetches).toEqual([`${url}/moved/keys`]);
  });

  it("refuses tokens for a published key that cannot be imported (EC point off the curve)", async () => {
    const h = createHarness();
    const ec = await createTestKey("ES256");
    const iss = await standinIssuer(h, { config: { algorithms: ["ES256"] }, key: ec });
    const offCurve = { ...ec.publicJwk, y: ec.publicJwk.x };
    await setIssuerScenario(env.STANDIN_URL, iss.name, { jwks: { keys: [offCurve] } });
    await expectUnverified(verifyWith(h, await iss.token(), [iss.config]), "key_unknown");
    await expectUnverified(verifyWith(h, await iss.token(), [iss.config]), "key_unknown");
  });

  it("drops unusable keys from a fetched set and keeps the rest", async () => {
    const h = createHarness();
    const good = await createTestKey();
    const iss = await standinIssuer(h, { key: good });
    await setIssuerScenario(env.STANDIN_URL, iss.name, {
      jwks: { keys: [{ kty: "oct", kid: "hmac", k: "c2VjcmV0" }, good.publicJwk] },
    });
    expect(await verifyWith(h, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });
    await expectUnverified(verifyWith(h, await iss.token({}, good, { kid: "hmac" }), [iss.config]), "key_unknown");
  });
});

describe("pushed keys", () => {
  it("are never fetched: none stored → jwks_unavailable without any request", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { config: { keys: { source: "pushed" } } });
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    expect(h.counters.fetches).toEqual([]);
  });

  it("verify once stored; other isolates read them from KV, re-checking in the background", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { config: { keys: { source: "pushed" } } });
    await h.verifier.storePushedKeys(iss.config, [iss.key.publicJwk as PublicJwk], h.env);
    expect(await verifyWith(h, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });

    const other = createHarness();
    expect(await verifyWith(other, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });
    expect(other.counters).toEqual({ fetches: [], kvGets: 1, kvPuts: 0 });

    // A new push reaches the other isolate at its next re-check.
    const next = await createTestKey();
    await h.verifier.storePushedKeys(iss.config, [next.publicJwk as PublicJwk], h.env);
    other.advance(PUSHED_JWKS_RECHECK_SECONDS);
    await verifyWith(other, await iss.token(), [iss.config]); // still the old key, re-check in background
    await other.settle();
    expect(await verifyWith(other, await iss.token({}, next), [iss.config])).toMatchObject({ issuer: iss.name });
    expect(other.counters.fetches).toEqual([]);
  });

  it("an unknown kid re-reads KV in the background (cooldown-limited), so a fresh push verifies on the retry", async () => {
    const a = createHarness();
    const b = createHarness();
    const iss = await standinIssuer(a, { config: { keys: { source: "pushed" } } });
    await a.verifier.storePushedKeys(iss.config, [iss.key.publicJwk as PublicJwk], a.env);
    await verifyWith(b, await iss.token(), [iss.config]);
    const next = await createTestKey();
    await a.verifier.storePushedKeys(iss.config, [next.publicJwk as PublicJwk], a.env);
    b.resetCounters();
    const pushed = await iss.token({}, next);
    await expectUnverified(verifyWith(b, pushed, [iss.config]), "key_unknown");
    await b.settle();
    expect(await verifyWith(b, pushed, [iss.config])).toMatchObject({ issuer: iss.name });
    expect(b.counters).toEqual({ fetches: [], kvGets: 1, kvPuts: 0 });
  });

  it("a push replaces the keys in every isolate even when stamped by a clock that runs behind", async () => {
    const warm = createHarness();
    const iss = await standinIssuer(warm, { config: { keys: { source: "pushed" } } });
    const old = await createTestKey();
    // Pushed from a machine whose clock runs an hour ahead, then revoked by a push stamped with the right time.
    await env.JWKS.put(
      jwksStorageKey(iss.name),
      JSON.stringify(pushedKeySet(iss.config.url, [old.publicJwk as PublicJwk], warm.now() + 3600)),
    );
    expect(await verifyWith(warm, await iss.token({}, old), [iss.config])).toMatchObject({ issuer: iss.name });
    await env.JWKS.put(
      jwksStorageKey(iss.name),
      JSON.stringify(pushedKeySet(iss.config.url, [iss.key.publicJwk as PublicJwk], warm.now())),
    );

    warm.advance(PUSHED_JWKS_RECHECK_SECONDS);
    await verifyWith(warm, await iss.token({}, old), [iss.config]); // served from memory; the re-check runs in the background
    await warm.settle();
    await expectUnverified(verifyWith(warm, await iss.token({}, old), [iss.config]), "key_unknown");
    expect(await verifyWith(warm, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });
  });

  it("an isolate that found no keys answers jwks_unavailable from that look until its re-check, then sees a push", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { config: { keys: { source: "pushed" } } });
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    expect(h.counters.kvGets).toBe(1);
    await createHarness().verifier.storePushedKeys(iss.config, [iss.key.publicJwk as PublicJwk], h.env);
    h.resetCounters();
    for (let i = 0; i < 5; i++) await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
    expect(h.counters.kvGets).toBe(0);

    h.advance(PUSHED_JWKS_RECHECK_SECONDS);
    expect(await verifyWith(h, await iss.token(), [iss.config])).toMatchObject({ issuer: iss.name });
    expect(h.counters).toEqual({ fetches: [], kvGets: 1, kvPuts: 0 });
  });

  it("deleting the stored record revokes them at the next re-check", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { config: { keys: { source: "pushed" } } });
    await h.verifier.storePushedKeys(iss.config, [iss.key.publicJwk as PublicJwk], h.env);
    await env.JWKS.delete(jwksStorageKey(iss.name));
    h.advance(PUSHED_JWKS_RECHECK_SECONDS);
    await verifyWith(h, await iss.token(), [iss.config]);
    await h.settle();
    await expectCode(verifyWith(h, await iss.token(), [iss.config]), "jwks_unavailable");
  });
});

describe("cron refresh and status", () => {
  it("refreshes key sets about to turn stale, leaves fresh ones, and records failures without losing keys", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { cacheControl: "max-age=3600" } });
    await h.verifier.refresh([iss.config], h.env);
    const first = await storedRecord(iss.name);
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });

    h.advance(3600 - JWKS_REFRESH_AHEAD_SECONDS - 60);
    await h.verifier.refresh([iss.config], h.env);
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });

    h.advance(120);
    await h.verifier.refresh([iss.config], h.env);
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 2, jwks: 2 });
    expect((await storedRecord(iss.name)).fetched_at).toBeGreaterThan(first.fetched_at);

    await setIssuerScenario(env.STANDIN_URL, iss.name, { faults: { discovery: "fail" } });
    h.advance(3600);
    await h.verifier.refresh([iss.config], h.env);
    const failed = await storedRecord(iss.name);
    expect(failed.last_error).toMatch(/HTTP 500/);
    expect(failed.keys.map((k) => k.kid)).toEqual([iss.key.kid]);

    const [status] = await h.verifier.keyStatus([iss.config], h.env);
    expect(status).toMatchObject({
      name: iss.name,
      source: "discovery",
      kids: [iss.key.kid],
      fetched_at: failed.fetched_at,
    });
    expect(status!.last_error).toMatch(/HTTP 500/);
  });

  it("a failed refresh never writes its stale set over keys another isolate stored meanwhile", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { cacheControl: "max-age=600" } });
    await h.verifier.refresh([iss.config], h.env);
    const before = await storedRecord(iss.name);
    await setIssuerScenario(env.STANDIN_URL, iss.name, { faults: { discovery: "fail" } });
    h.advance(600);
    // While the cron's fetch is failing, another isolate stores the issuer's rotated keys.
    const rotated = await createTestKey();
    const newer: StoredKeySet = {
      ...before,
      keys: [rotated.publicJwk as PublicJwk],
      fetched_at: h.now(),
      fresh_until: h.now() + 600,
    };
    const realFetch = fetch;
    const racing: typeof fetch = async (input, init) => {
      const response = await realFetch(input, init);
      await env.JWKS.put(jwksStorageKey(iss.name), JSON.stringify(newer));
      return response;
    };
    await new Verifier({ fetch: racing, now: () => (h.now() + 1) * 1000 }).refresh([iss.config], h.env);
    expect(await storedRecord(iss.name)).toEqual(newer);
  });

  it("adopts a fresher set another isolate stored instead of fetching again", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { cacheControl: "max-age=600" } });
    await h.verifier.refresh([iss.config], h.env);
    h.advance(600);
    // Another isolate (or the cron elsewhere) refreshed the set meanwhile.
    const fresher: StoredKeySet = {
      ...(await storedRecord(iss.name)),
      fetched_at: h.now(),
      fresh_until: h.now() + JWKS_REFRESH_AHEAD_SECONDS + 600,
    };
    await env.JWKS.put(jwksStorageKey(iss.name), JSON.stringify(fresher));
    await h.verifier.refresh([iss.config], h.env);
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 1, jwks: 1 });
    const [status] = await h.verifier.keyStatus([iss.config], h.env);
    expect(status).toMatchObject({ fetched_at: fresher.fetched_at, fresh_until: fresher.fresh_until });
  });

  it("keeps its newer set when KV holds an older one (a slow isolate's late write)", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { scenario: { cacheControl: "max-age=3600" } });
    await h.verifier.refresh([iss.config], h.env);
    const older = await storedRecord(iss.name);
    h.advance(3600);
    await h.verifier.refresh([iss.config], h.env);
    await env.JWKS.put(jwksStorageKey(iss.name), JSON.stringify(older));
    // Adopting the older set would make this refresh fetch again: it is stale.
    await h.verifier.refresh([iss.config], h.env);
    expect(await issuerStats(env.STANDIN_URL, iss.name)).toEqual({ discovery: 2, jwks: 2 });
  });

  it("skips pushed issuers and reports them", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { config: { keys: { source: "pushed" } } });
    await h.verifier.refresh([iss.config], h.env);
    expect(h.counters.fetches).toEqual([]);
    expect(await h.verifier.keyStatus([iss.config], h.env)).toEqual([
      {
        name: iss.name,
        source: "pushed",
        fetched_at: null,
        fresh_until: null,
        kids: [],
        last_error: null,
        age_seconds: null,
        pushed_by: null,
        retired: [],
      },
    ]);
  });
});

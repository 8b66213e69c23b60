// Pushed keys over time, through the real app with an injected clock: keys a push removes keep
// verifying for the issuer's max token age (or stop at once with previous=drop), the status shows
// each push's age and author, and the cron warns when pushes stop.
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../../src/app";
import { readConfig, type Env } from "../../../src/config";
import { defaultDeps } from "../../../src/deps";
import worker from "../../../src/index";
import { CLOCK_SKEW_SECONDS, TIME } from "../../../src/limits";
import { normalizePolicy } from "../../../src/policy/policy-schema";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import { ACTIVE_SNAPSHOT_KEY } from "../../../src/policy/active-policy";
import type { IssuerConfig } from "../../../src/types";
import {
  jwksStorageKey,
  parseStoredKeySet,
  pushedKeySet,
  type StoredKeySet,
} from "../../../src/issuer-keys/stored-key-set";
import type { PublicJwk } from "../../../src/issuer-keys/key-set-validation";
import { createTestKey, gitlabClaims, jwksOf, signToken, type TestKey } from "../../support/tokens";

const AUDIENCE = "https://gatepass.test";
const MAX_TOKEN_AGE = 3600;
const GRACE = MAX_TOKEN_AGE + CLOCK_SKEW_SECONDS;
const url = (name: string) => `https://${name}.corp.example`;
const ISSUERS = ["grace", "drop", "extend", "status", "fresh", "old", "never"];
let issuers: IssuerConfig[];
let a: TestKey;
let b: TestKey;
let c: TestKey;

beforeAll(async () => {
  const { policy, problems } = normalizePolicy(
    [
      {
        name: "issuers.yaml",
        value: {
          issuers: ISSUERS.map((name) => ({
            name,
            url: url(name),
            audiences: [AUDIENCE],
            keys: { source: "pushed" },
            max_token_age: MAX_TOKEN_AGE,
          })),
        },
      },
    ],
    "source",
  );
  expect(problems).toEqual([]);
  issuers = policy.issuers;
  await env.POLICIES.put(
    ACTIVE_SNAPSHOT_KEY,
    (await buildSnapshot(policy, { sourceDigest: "0".repeat(64), createdAt: new Date().toISOString() })).text,
  );
  [a, b, c] = await Promise.all([createTestKey(), createTestKey(), createTestKey()]);
});

afterEach(() => vi.restoreAllMocks());

/** A gatepass isolate whose clock the test moves (seconds since the epoch). */
function isolate(start: number) {
  let clock = start;
  const app = createApp({ ...defaultDeps, now: () => clock * 1000 });
  const request = async (path: string, init: RequestInit = {}) => {
    const ctx = createExecutionContext();
    const res = await app.request(`https://gatepass.test${path}`, init, env, ctx);
    await waitOnExecutionContext(ctx);
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  return {
    at(seconds: number) {
      clock = seconds;
    },
    push: (issuer: string, keys: TestKey[], query = "") =>
      request(`/v1/admin/issuers/${issuer}/jwks${query}`, {
        method: "PUT",
        headers: { Authorization: "Bearer test-admin-token" },
        body: JSON.stringify(jwksOf(...keys)),
      }),
    /**
     * whoami with a token of `issuer` signed by `key`, issued now: "verified", or the refusal's code as
     * logged (the wire says token_unverified for every unverified token; the log line keeps the reason).
     */
    async verify(issuer: string, key: TestKey) {
      const token = await signToken(key, gitlabClaims({ issuer: url(issuer), audience: AUDIENCE, now: clock }));
      const logged = vi.spyOn(console, "log").mockImplementation(() => {});
      const { status, body } = await request("/v1/whoami", { headers: { Authorization: `Bearer ${token}` } });
      const line = logged.mock.calls
        .map(([text]) => JSON.parse(String(text)))
        .find((entry) => entry.event === "request");
      logged.mockRestore();
      if (status === 200) return "verified";
      expect(body.code).toBe("token_unverified");
      return String(line?.code);
    },
    status: () => request("/v1/admin/status", { headers: { Authorization: "Bearer test-admin-token" } }),
  };
}

describe("keys a push removes", () => {
  it("keep verifying for the issuer's max token age + skew, in warm isolates too, then stop", async () => {
    const t0 = Math.floor(Date.now() / 1000);
    const gp = isolate(t0);
    expect((await gp.push("grace", [a])).status).toBe(200);
    expect(await gp.verify("grace", a)).toBe("verified");

    // GitLab rotated: its keys now hold only b.
    gp.at(t0 + 10);
    const rotated = await gp.push("grace", [b]);
    const until = t0 + 10 + GRACE;
    expect(rotated).toMatchObject({ status: 200, body: { kids: [b.kid], retired: [{ kid: a.kid, until }] } });
    expect(await gp.verify("grace", a)).toBe("verified");
    expect(await gp.verify("grace", b)).toBe("verified");
    expect(await isolate(t0 + 10).verify("grace", a)).toBe("verified"); // another isolate, from KV

    // Shortly before the end the warm isolate re-checks; at the end it must not serve a from memory.
    gp.at(until - 30);
    expect(await gp.verify("grace", a)).toBe("verified");
    gp.at(until);
    expect(await gp.verify("grace", a)).toBe("key_unknown");
    expect(await gp.verify("grace", b)).toBe("verified");
    expect(await isolate(until).verify("grace", a)).toBe("key_unknown");
  });

  it("stop at once with previous=drop (a compromised key), earlier retired ones included", async () => {
    const t0 = Math.floor(Date.now() / 1000);
    const gp = isolate(t0);
    await gp.push("drop", [a]);
    await gp.push("drop", [b]);
    expect(await gp.verify("drop", a)).toBe("verified");
    const dropped = await gp.push("drop", [c], "?previous=drop");
    expect(dropped).toMatchObject({ status: 200, body: { kids: [c.kid], retired: [] } });
    expect(await gp.verify("drop", a)).toBe("key_unknown");
    expect(await gp.verify("drop", b)).toBe("key_unknown");
    expect(await gp.verify("drop", c)).toBe("verified");
    expect(await isolate(t0).verify("drop", b)).toBe("key_unknown");
    const record = JSON.parse((await env.JWKS.get(jwksStorageKey("drop")))!) as StoredKeySet;
    expect(record.retired).toBeUndefined();
  });

  it("a later push never extends a retired key's time; a key pushed again is current, and retires afresh when removed", async () => {
    const t0 = Math.floor(Date.now() / 1000);
    const gp = isolate(t0);
    await gp.push("extend", [a]);
    gp.at(t0 + 10);
    await gp.push("extend", [b]);
    gp.at(t0 + 100);
    expect((await gp.push("extend", [b])).body.retired).toEqual([{ kid: a.kid, until: t0 + 10 + GRACE }]);
    gp.at(t0 + 200);
    expect((await gp.push("extend", [a, b])).body.retired).toEqual([]);
    gp.at(t0 + 300);
    expect((await gp.push("extend", [b])).body.retired).toEqual([{ kid: a.kid, until: t0 + 300 + GRACE }]);
  });

  it("refuses other previous values and unknown parameters with request_invalid, storing nothing", async () => {
    const gp = isolate(Math.floor(Date.now() / 1000));
    await gp.push("extend", [a]);
    const before = await env.JWKS.get(jwksStorageKey("extend"));
    for (const query of ["?previous=yes", "?previous=keep&previous=drop", "?previous=", "?grace=0"]) {
      expect(await gp.push("extend", [c], query), query).toMatchObject({
        status: 400,
        body: { code: "request_invalid" },
      });
    }
    expect(await env.JWKS.get(jwksStorageKey("extend"))).toBe(before);
  });

  it("a stored record's retired entries that are not valid keys with a time, or that repeat a current kid, are dropped", async () => {
    const issuer = issuers.find((i) => i.name === "grace")!;
    const privateJwk = await crypto.subtle.exportKey("jwk", c.privateKey);
    const record = {
      ...pushedKeySet(issuer.url, [b.publicJwk as PublicJwk], 1_000, { pushedBy: "admin" }),
      retired: [
        { key: a.publicJwk, until: 5_000 },
        { key: { ...privateJwk, kid: "leaked" }, until: 5_000 },
        { key: c.publicJwk, until: "5000" },
        { key: b.publicJwk, until: 5_000 },
        "junk",
      ],
    };
    const parsed = parseStoredKeySet(JSON.stringify(record), issuer)!;
    expect(parsed.retired).toEqual([{ key: expect.objectContaining({ kid: a.kid }), until: 5_000 }]);
    expect(parsed.pushed_by).toBe("admin");
    expect(
      parseStoredKeySet(JSON.stringify({ ...record, pushed_by: "x".repeat(257) }), issuer)!.pushed_by,
    ).toBeUndefined();
  });
});

describe("GET /v1/admin/status for pushed issuers", () => {
  it("shows the last push, who made it, the kids, the age, the retiring keys and whether it is stale", async () => {
    const t0 = Math.floor(Date.now() / 1000);
    const gp = isolate(t0);
    await gp.push("status", [a]);
    await gp.push("status", [b]);
    gp.at(t0 + 30 * 60);
    const fresh = (await gp.status()).body.issuers.find((i: { name: string }) => i.name === "status");
    expect(fresh).toEqual({
      name: "status",
      source: "pushed",
      fetched_at: t0,
      fresh_until: expect.any(Number),
      kids: [b.kid],
      last_error: null,
      age_seconds: 30 * 60,
      pushed_by: "admin",
      retired: [{ kid: a.kid, until: t0 + GRACE }],
      stale: false,
    });
    gp.at(t0 + 2 * 3600 + 1);
    const stale = (await gp.status()).body.issuers.find((i: { name: string }) => i.name === "status");
    expect(stale).toMatchObject({ age_seconds: 2 * 3600 + 1, retired: [], stale: true });
    const never = (await gp.status()).body.issuers.find((i: { name: string }) => i.name === "never");
    expect(never).toMatchObject({ kids: [], age_seconds: null, pushed_by: null, stale: true });
  });
});

describe("the cron's pushed_keys_stale warning", () => {
  it("names pushed issuers whose last push is older than PUSHED_KEYS_WARN_AFTER_HOURS, and those never pushed", async () => {
    const now = Math.floor(Date.now() / 1000);
    const put = (name: string, age: number) =>
      env.JWKS.put(
        jwksStorageKey(name),
        JSON.stringify(
          pushedKeySet(url(name), [a.publicJwk as PublicJwk], now - age, { pushedBy: "gpk_0123456789abcdef" }),
        ),
      );
    await put("fresh", 90 * 60);
    await put("old", 150 * 60);
    const warned = async (bindings: Env) => {
      const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
      const ctx = createExecutionContext();
      await worker.scheduled(createScheduledController({ cron: "*/5 * * * *" }), bindings, ctx);
      await waitOnExecutionContext(ctx);
      const events = warn.mock.calls
        .map(([line]) => JSON.parse(String(line)) as Record<string, unknown>)
        .filter((e) => e.event === "pushed_keys_stale");
      warn.mockRestore();
      return Object.fromEntries(events.map((e) => [e.issuer, e]));
    };

    const byDefault = await warned({ ...(env as unknown as Env) });
    expect(Object.keys(byDefault).sort()).toEqual(expect.arrayContaining(["never", "old"]));
    expect(byDefault).not.toHaveProperty("fresh");
    expect(byDefault.old).toMatchObject({
      level: "warn",
      age_seconds: expect.any(Number),
      pushed_by: "gpk_0123456789abcdef",
      kids: [a.kid],
      warn_after_seconds: 2 * 3600,
    });
    expect(byDefault.old!.last_push).toBe(new Date((now - 150 * 60) * 1000).toISOString());
    expect(byDefault.never).toMatchObject({ age_seconds: null, last_push: null, kids: [] });

    const after3h = await warned({ ...(env as unknown as Env), PUSHED_KEYS_WARN_AFTER_HOURS: "3" });
    expect(after3h).not.toHaveProperty("old");
    expect(after3h).toHaveProperty("never");
    const after1h = await warned({ ...(env as unknown as Env), PUSHED_KEYS_WARN_AFTER_HOURS: "1" });
    expect(after1h).toHaveProperty("fresh");
  });
});

describe("PUSHED_KEYS_WARN_AFTER_HOURS", () => {
  const config = (value: string | undefined) =>
    readConfig({ ...(env as unknown as Env), PUSHED_KEYS_WARN_AFTER_HOURS: value });

  it("defaults to 2 hours and takes whole hours from 1 to 720", () => {
    expect(config(undefined).pushedKeysWarnAfterSeconds).toBe(2 * TIME.HOUR);
    expect(config("").pushedKeysWarnAfterSeconds).toBe(2 * TIME.HOUR);
    expect(config("1").pushedKeysWarnAfterSeconds).toBe(TIME.HOUR);
    expect(config("720").pushedKeysWarnAfterSeconds).toBe(720 * TIME.HOUR);
  });

  it.each(["0", "721", "2h", "1.5", "-1", " 2", "two", "99999"])(
    "refuses %j with config_invalid naming the variable",
    (value) => {
      expect(() => config(value)).toThrow(
        expect.objectContaining({
          code: "config_invalid",
          cause: expect.objectContaining({ message: expect.stringContaining("PUSHED_KEYS_WARN_AFTER_HOURS") }),
        }),
      );
    },
  );
});

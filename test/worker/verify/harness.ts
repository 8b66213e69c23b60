// Shared set-up for verification tests: a Verifier with a controllable clock, a fetch and a KV
// binding that count every call (so "zero network, zero KV" is asserted, not assumed), and issuers
// served by the loopback stand-in.
import { env } from "cloudflare:test";
import type { Env } from "../../../src/config";
import type { Deps } from "../../../src/deps";
import { Verifier } from "../../../src/verify/verifier";
import type { IssuerConfig } from "../../../src/types";
import { setIssuerScenario, standinIssuerUrl, type IssuerScenario } from "../../support/standins/issuer";
import { createTestKey, gitlabClaims, jwksOf, signToken, type TestKey } from "../../support/tokens";

export const AUDIENCE = "https://gatepass.test";

export interface Counters {
  fetches: string[];
  kvGets: number;
  kvPuts: number;
}

export interface Harness {
  verifier: Verifier;
  env: Env;
  counters: Counters;
  /** Seconds since the epoch on the verifier's clock. */
  now(): number;
  advance(seconds: number): void;
  resetCounters(): void;
  /** Runs the promises verify() handed to waitUntil (background reloads, KV writes). */
  settle(): Promise<void>;
  waitUntil: (promise: Promise<unknown>) => void;
}

export function createHarness(
  options: { fetchTimeoutMs?: number; beforeFetch?: (url: string) => Promise<void> } = {},
): Harness {
  let nowMs = Date.now();
  const counters: Counters = { fetches: [], kvGets: 0, kvPuts: 0 };
  const pending: Promise<unknown>[] = [];
  const deps: Deps = {
    fetch: async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      counters.fetches.push(url);
      // A test holds requests here to show what does (and does not) wait on the issuer.
      if (options.beforeFetch) await options.beforeFetch(url);
      return fetch(input, init);
    },
    now: () => nowMs,
  };
  const kv = env.JWKS;
  const countingKv = {
    get: (key: string) => {
      counters.kvGets++;
      return kv.get(key);
    },
    put: (...args: Parameters<KVNamespace["put"]>) => {
      counters.kvPuts++;
      return kv.put(...args);
    },
    delete: (key: string) => kv.delete(key),
  } as unknown as KVNamespace;
  return {
    verifier: new Verifier(deps, { fetchTimeoutMs: options.fetchTimeoutMs ?? 1_000 }),
    env: { ...(env as unknown as Env), JWKS: countingKv },
    counters,
    now: () => Math.floor(nowMs / 1000),
    advance: (seconds) => {
      nowMs += seconds * 1000;
    },
    resetCounters: () => {
      counters.fetches.length = 0;
      counters.kvGets = 0;
      counters.kvPuts = 0;
    },
    settle: async () => {
      while (pending.length > 0) await Promise.allSettled(pending.splice(0));
    },
    waitUntil: (promise) => {
      pending.push(promise);
    },
  };
}

let counter = 0;
/** A fresh stand-in issuer name per test: the stand-in server is shared by every test file. */
export function uniqueName(prefix: string): string {
  counter++;
  return `${prefix}-${counter}-${crypto.randomUUID().slice(0, 8)}`;
}

export function issuerConfig(name: string, overrides: Partial<IssuerConfig> = {}): IssuerConfig {
  return {
    name,
    url: standinIssuerUrl(env.STANDIN_URL, name),
    kind: "gitlab",
    aliases: [],
    audiences: [AUDIENCE],
    algorithms: ["RS256"],
    keys: { source: "discovery" },
    max_token_age_seconds: 3600,
    accept_legacy_ci_job_jwt: false,
    ...overrides,
  };
}

export interface StandinIssuer {
  name: string;
  config: IssuerConfig;
  key: TestKey;
  /** A valid token for this issuer, claims overridable; signed with `key` unless another is given. */
  token(overrides?: Record<string, unknown>, signWith?: TestKey, header?: Record<string, unknown>): Promise<string>;
}

/** A discovery issuer on the stand-in publishing one fresh RS256 key. */
export async function standinIssuer(
  h: Harness,
  options: { prefix?: string; config?: Partial<IssuerConfig>; scenario?: IssuerScenario; key?: TestKey } = {},
): Promise<StandinIssuer> {
  const name = uniqueName(options.prefix ?? "iss");
  const key = options.key ?? (await createTestKey("RS256"));
  const config = issuerConfig(name, options.config);
  await setIssuerScenario(env.STANDIN_URL, name, { jwks: jwksOf(key), ...options.scenario });
  return {
    name,
    config,
    key,
    token: (overrides = {}, signWith = key, header = {}) =>
      signToken(
        signWith,
        { ...gitlabClaims({ issuer: config.url, audience: AUDIENCE, now: h.now() }), ...overrides },
        header,
      ),
  };
}

/**
 * A token whose signature did not verify is refused as token_unverified on the wire, whatever the
 * reason; the reason (`recorded`) is what the log line and audit row carry.
 */
export async function expectUnverified(promise: Promise<unknown>, recorded: string): Promise<void> {
  await expectCode(promise, "token_unverified");
  const concealed = await promise.then(
    () => undefined,
    (err: unknown) => (err as { conceals?: { code?: string } }).conceals?.code,
  );
  if (concealed !== recorded)
    throw new Error(`expected token_unverified standing for ${recorded}, got it standing for ${concealed}`);
}

/** Asserts the promise rejects with a GatepassError of this code. */
export async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  let error: unknown;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  if (!error) throw new Error(`expected ${code}, but it resolved`);
  const actual = (error as { code?: string }).code;
  if (actual !== code) throw new Error(`expected ${code}, got ${actual ?? String(error)}`, { cause: error });
}

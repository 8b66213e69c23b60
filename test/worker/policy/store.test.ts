import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { Env } from "../../../src/config";
import { isGatepassError } from "../../../src/errors";
import { POLICY_RECHECK_MS } from "../../../src/limits";
import { ACTIVE_SNAPSHOT_KEY, PolicyStore } from "../../../src/policy/store";
import { RULES_YAML, snapshotOf, sources } from "./fixtures";

/** The real POLICIES binding, counted, and made to fail on demand. */
function instrumented() {
  const state = { reads: 0, failing: false };
  const POLICIES = new Proxy(env.POLICIES, {
    get(target, prop) {
      if (prop === "get") {
        return async (...args: unknown[]) => {
          state.reads++;
          if (state.failing) throw new Error("KV unavailable");
          return (target.get as (...a: unknown[]) => Promise<unknown>)(...args);
        };
      }
      return Reflect.get(target, prop);
    },
  });
  return { env: { ...env, POLICIES } as Env, state };
}

function setup() {
  let now = 1_000_000;
  const store = new PolicyStore({ fetch: () => Promise.reject(new Error("no network")), now: () => now });
  const pending: Promise<unknown>[] = [];
  const waitUntil = (p: Promise<unknown>) => void pending.push(p);
  const settle = () => Promise.all(pending.splice(0));
  return { store, waitUntil, settle, advance: (ms: number) => (now += ms) };
}

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return isGatepassError(err) ? err.code : String(err);
  }
  return "resolved";
}

beforeEach(async () => {
  await env.POLICIES.delete(ACTIVE_SNAPSHOT_KEY);
});

describe("PolicyStore", () => {
  it("fails closed with policy_unavailable when KV holds no snapshot or a corrupt one", async () => {
    const { env: e } = instrumented();
    const { store, waitUntil } = setup();
    expect(await code(store.current(e, waitUntil))).toBe("policy_unavailable");
    const { text } = await snapshotOf();
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, text.replace('"ref":"main"', '"ref":"any"'));
    expect(await code(store.current(e, waitUntil))).toBe("policy_unavailable");
    expect(store.lastError).toMatch(/content hash does not match/);
  });

  it("loads once, then serves from memory without KV reads until the recheck interval", async () => {
    const { env: e, state } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const { text, snapshot } = await snapshotOf();
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, text);
    const loaded = await store.current(e, waitUntil);
    expect(loaded.version).toBe(snapshot.version);
    expect(state.reads).toBe(1);
    for (let i = 0; i < 50; i++) await store.current(e, waitUntil);
    advance(POLICY_RECHECK_MS - 1);
    await store.current(e, waitUntil);
    await settle();
    expect(state.reads).toBe(1);
    advance(1);
    await store.current(e, waitUntil);
    await settle();
    expect(state.reads).toBe(2);
    // The recheck found the same snapshot: the compiled policy is kept, not rebuilt (a 10 000-rule
    // snapshot takes about 0.2 s to load).
    expect(await store.current(e, waitUntil)).toBe(loaded);
  });

  it("single-flights concurrent cold loads", async () => {
    const { env: e, state } = instrumented();
    const { store, waitUntil } = setup();
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, (await snapshotOf()).text);
    const policies = await Promise.all(Array.from({ length: 10 }, () => store.current(e, waitUntil)));
    expect(new Set(policies).size).toBe(1);
    expect(state.reads).toBe(1);
  });

  it("picks up a new snapshot after the recheck, serving the old one meanwhile", async () => {
    const { env: e } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const first = await snapshotOf();
    const second = await snapshotOf(sources({ rules: RULES_YAML.replace("ref: main", "ref: release") }));
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, first.text);
    await store.current(e, waitUntil);
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, second.text);
    advance(POLICY_RECHECK_MS);
    expect((await store.current(e, waitUntil)).version).toBe(first.snapshot.version);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(second.snapshot.version);
  });

  it("keeps the last good snapshot while KV fails or serves a corrupt one", async () => {
    const { env: e, state } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const { text, snapshot } = await snapshotOf();
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, text);
    await store.current(e, waitUntil);

    state.failing = true;
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(snapshot.version);
    expect(store.lastError).toMatch(/KV read failed/);

    state.failing = false;
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, "{corrupt");
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(snapshot.version);
    expect(store.lastError).toMatch(/snapshot rejected/);
  });

  it("clears lastError once KV serves the loaded snapshot again (KV recovered, bad push replaced)", async () => {
    const { env: e, state } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const { text } = await snapshotOf();
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, text);
    await store.current(e, waitUntil);
    const recheck = async () => {
      advance(POLICY_RECHECK_MS);
      await store.current(e, waitUntil);
      await settle();
    };

    state.failing = true;
    await recheck();
    expect(store.lastError).toMatch(/KV read failed/);
    state.failing = false;
    await recheck();
    expect(store.lastError).toBeUndefined();

    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, "{corrupt");
    await recheck();
    expect(store.lastError).toMatch(/snapshot rejected/);
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, text);
    await recheck();
    expect(store.lastError).toBeUndefined();
  });

  it("drops its copy when the snapshot is deleted from KV (emergency stop)", async () => {
    const { env: e } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, (await snapshotOf()).text);
    await store.current(e, waitUntil);
    await env.POLICIES.delete(ACTIVE_SNAPSHOT_KEY);
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect(await code(store.current(e, waitUntil))).toBe("policy_unavailable");
  });
});

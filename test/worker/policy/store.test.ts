import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { Env } from "../../../src/config";
import { sha256Hex } from "../../../src/encoding";
import { isGatepassError } from "../../../src/errors";
import { POLICY_RECHECK_MS } from "../../../src/limits";
import { evaluate } from "../../../src/policy/evaluate";
import { canonicalJson, payloadChunks, storedSnapshot, type StoredSnapshot } from "../../../src/policy/snapshot-format";
import { createApp } from "../../../src/app";
import { defaultDeps } from "../../../src/deps";
import {
  ACTIVE_SNAPSHOT_KEY,
  FALLBACK_SNAPSHOTS_KEY,
  payloadChunkKey,
  PolicyStore,
} from "../../../src/policy/active-policy";
import { createServices } from "../../../src/services";
import { identity, INFRA_MAIN, RULES_YAML, snapshotOf, sources } from "./fixtures";

/** The real POLICIES binding, counted, and made to fail on demand (every read, or chunk reads only). */
function instrumented() {
  const state = { reads: 0, failing: false, chunksFailing: false };
  const POLICIES = new Proxy(env.POLICIES, {
    get(target, prop) {
      if (prop === "get") {
        return async (...args: unknown[]) => {
          state.reads++;
          if (state.failing || (state.chunksFailing && String(args[0]).startsWith("snapshot:")))
            throw new Error("KV unavailable");
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
  await env.POLICIES.delete(FALLBACK_SNAPSHOTS_KEY);
});

/** The fixture policy plus `count` project rules: past POLICY_KV_CHUNK_BYTES from about 4 000. */
async function largeStored(count: number, ref = "main"): Promise<StoredSnapshot> {
  const bulk = Array.from(
    { length: count },
    (_, i) =>
      `  - { name: bulk-${i}, issuer: corp-gitlab, match: { project_path: bulk/project-${i}, ref_type: branch, ref: ${ref} }, allow: [reader] }`,
  );
  const { snapshot } = await snapshotOf(sources({ rules: `${RULES_YAML}${bulk.join("\n")}\n` }));
  return storedSnapshot(snapshot);
}

/** What push writes: the chunks, then the header under `active`. */
async function putStored(stored: StoredSnapshot, skipChunk?: number): Promise<void> {
  for (const [i, chunk] of payloadChunks(stored.payload).entries()) {
    if (i === skipChunk) await env.POLICIES.delete(payloadChunkKey(stored.header, i));
    else await env.POLICIES.put(payloadChunkKey(stored.header, i), chunk);
  }
  await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, stored.headerText);
}

const bulkJob = (i: number) => identity({ ...INFRA_MAIN, project_path: `bulk/project-${i}`, namespace_path: "bulk" });

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

  it("re-reads `active` before every request only in development with GATEPASS_POLICY_RECHECK=every-request (`gatepass dev`)", async () => {
    const first = await snapshotOf();
    const second = await snapshotOf(sources({ rules: RULES_YAML.replace("ref: main", "ref: release") }));
    const served = async (vars: Partial<Env>) => {
      const { env: e } = instrumented();
      const { store, waitUntil } = setup();
      const withVars = { ...e, ...vars } as Env;
      await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, first.text);
      await store.current(withVars, waitUntil);
      await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, second.text);
      // The clock stands still: only the per-request re-check can see the push.
      return (await store.current(withVars, waitUntil)).version;
    };
    expect(await served({ GATEPASS_ENV: "development", GATEPASS_POLICY_RECHECK: "every-request" })).toBe(
      second.snapshot.version,
    );
    expect(await served({ GATEPASS_ENV: "development" })).toBe(first.snapshot.version);
    expect(await served({ GATEPASS_ENV: "production", GATEPASS_POLICY_RECHECK: "every-request" })).toBe(
      first.snapshot.version,
    );
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

  it("loads a stored snapshot from `active`'s header and its chunks, and re-reads only `active` while it is unchanged", async () => {
    const { env: e, state } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const stored = await largeStored(4500);
    expect(stored.header.chunks).toBeGreaterThan(1);
    await putStored(stored);
    const policy = await store.current(e, waitUntil);
    expect(policy.version).toBe(stored.header.version);
    expect(state.reads).toBe(1 + stored.header.chunks);
    expect(evaluate(policy, bulkJob(4321), "reader")).toEqual({ allowed: true, target: "reader", rule: "bulk-4321" });
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect(state.reads).toBe(2 + stored.header.chunks);
    expect(await store.current(e, waitUntil)).toBe(policy);
  });

  it("switches from a whole format 1 snapshot to a stored one, and back", async () => {
    const { env: e } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const whole = await snapshotOf();
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, whole.text);
    expect((await store.current(e, waitUntil)).version).toBe(whole.snapshot.version);
    const stored = await largeStored(10);
    await putStored(stored);
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(stored.header.version);
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, whole.text);
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(whole.snapshot.version);
  });

  it("fails closed on a missing chunk, and keeps the last good snapshot when a chunk is missing or cannot be read", async () => {
    const { env: e, state } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const first = await largeStored(4500);
    await putStored(first, 1);
    expect(await code(store.current(e, waitUntil))).toBe("policy_unavailable");
    expect(store.lastError).toMatch(new RegExp(`snapshot rejected: .*chunk 1 of ${first.header.chunks} is missing`));
    await putStored(first);
    await store.current(e, waitUntil);

    const second = await largeStored(4500, "release");
    await putStored(second, 0);
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(first.header.version);
    expect(store.lastError).toMatch(/chunk 0 of \d+ is missing/);

    await putStored(second);
    state.chunksFailing = true;
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(first.header.version);
    expect(store.lastError).toMatch(/^KV read failed/);

    state.chunksFailing = false;
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(second.header.version);
    expect(store.lastError).toBeUndefined();
  });

  it("serves the newest loadable version of `fallbacks` when `active` names missing chunks, and says so in admin status", async () => {
    const { env: e } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const [oldest, older, broken] = await Promise.all([
      largeStored(10, "a"),
      largeStored(10, "b"),
      largeStored(10, "c"),
    ]);
    await putStored(oldest);
    await putStored(older, 0); // a fallback whose chunks went too: skipped
    await putStored(broken, 0); // `active`: a push whose chunks another one deleted
    await env.POLICIES.put(FALLBACK_SNAPSHOTS_KEY, JSON.stringify([older.headerText, oldest.headerText]));

    // A cold isolate: the newest fallback that loads, not 503.
    expect((await store.current(e, waitUntil)).version).toBe(oldest.header.version);
    expect(store.servingFallbackFrom).toBe(broken.header.version);
    expect(store.lastError).toMatch(
      new RegExp(
        `chunk 0 of 1 is missing.*; serving the newest loadable earlier version ${oldest.header.version} instead`,
      ),
    );
    const services = createServices(defaultDeps);
    const res = await createApp(defaultDeps, services).request(
      "https://gatepass.test/v1/admin/status",
      { headers: { Authorization: "Bearer test-admin-token" } },
      env,
    );
    const body = (await res.json()) as { policy: Record<string, unknown> };
    expect(body.policy).toMatchObject({
      version: oldest.header.version,
      fallback_from: broken.header.version,
      last_error: expect.stringContaining("is missing"),
    });

    // It stays so across re-checks of the same `active` (no reload), and ends with a good push.
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect(store.servingFallbackFrom).toBe(broken.header.version);
    await putStored(older);
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(older.header.version);
    expect(store.servingFallbackFrom).toBeUndefined();
    expect(store.lastError).toBeUndefined();
  });

  it("keeps its own snapshot when it is the newest fallback, and is 503 when no fallback loads", async () => {
    const { env: e } = instrumented();
    const { store, waitUntil, settle, advance } = setup();
    const [good, broken] = await Promise.all([largeStored(10, "a"), largeStored(10, "c")]);
    await putStored(good);
    await store.current(e, waitUntil);
    await putStored(broken, 0);
    await env.POLICIES.put(FALLBACK_SNAPSHOTS_KEY, JSON.stringify([good.headerText]));
    advance(POLICY_RECHECK_MS);
    await store.current(e, waitUntil);
    await settle();
    expect((await store.current(e, waitUntil)).version).toBe(good.header.version);
    expect(store.servingFallbackFrom).toBe(broken.header.version);

    await env.POLICIES.delete(payloadChunkKey(good.header, 0));
    const cold = setup();
    expect(await code(cold.store.current(e, cold.waitUntil))).toBe("policy_unavailable");
    expect(cold.store.servingFallbackFrom).toBeUndefined();
  });

  it("reports a rule refused when a token first needed it", async () => {
    const { env: e } = instrumented();
    const { store, waitUntil } = setup();
    const stored = await largeStored(10);
    // A rule text that hashes right but names a target the snapshot lacks (only a writer bypassing push could do this).
    const payload = stored.payload.replace(
      '"allow":["reader"],"issuer":"corp-gitlab","match":{"project_path":"bulk/project-3"',
      '"allow":["readex"],"issuer":"corp-gitlab","match":{"project_path":"bulk/project-3"',
    );
    const body = payload.slice(stored.header.index_length);
    const header = { ...stored.header, version: await sha256Hex(body) };
    await env.POLICIES.put(payloadChunkKey(header, 0), payload);
    await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, canonicalJson(header));
    const policy = await store.current(e, waitUntil).catch(() => expect.fail(store.lastError));
    expect(store.lastError).toBeUndefined();
    expect(evaluate(policy, bulkJob(4), "reader").allowed).toBe(true);
    expect(await code((async () => evaluate(policy, bulkJob(3), "reader"))())).toBe("policy_unavailable");
    expect(store.lastError).toMatch(/rule \d+ of snapshot [0-9a-f]{12} was refused: .*unknown target 'readex'/);
  });
});

// Identities recorded for `policies plan` replay: verified callers only, the claims a rule can name
// without per-job ids, times or any token, aggregated per isolate and flushed at most every
// SEEN_IDENTITIES_FLUSH_MS in one statement; the list of notes is bounded; the cron prunes by age and count.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { pruneSeenIdentities, recordedClaims, SeenIdentityRecorder } from "../../../src/audit/seen-identities";
import type { Env } from "../../../src/config";
import { MAX_SEEN_IDENTITY_NOTES, SEEN_IDENTITIES_FLUSH_MS } from "../../../src/limits";
import { tokenDigest } from "../../../src/verify/verifier";
import { bearer, createHarness } from "../exchange/app-harness";
import { CI_CLAIMS, identity } from "../exchange/fixtures";

interface Row {
  claims_sha256: string;
  issuer: string;
  claims: string;
  count: number;
  targets: string;
  last_decision: string;
  first_seen: string;
  last_seen: string;
}

const rows = async () => (await env.DB.prepare("SELECT * FROM seen_identities ORDER BY first_seen").all<Row>()).results;

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM seen_identities").run();
});

describe("seen identities", () => {
  it("records a verified job's decision-relevant claims once per claim set, never its token, ids or times", async () => {
    let now = Date.now();
    const app = await createHarness({ deps: { now: () => now } });
    await app.scenario();
    const token = await app.ciToken();
    const first = await app.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer(token) });
    expect(first.status).toBe(200);
    // The first note flushes at once; the next ones wait for the flush interval.
    expect(await rows()).toHaveLength(1);
    await app.request("/v1/credentials/oidc-any", {
      method: "POST",
      headers: bearer(await app.ciToken({ job_id: "1235", pipeline_id: "901" })),
    });
    await app.request("/v1/whoami", { headers: bearer(await app.ciToken({ job_id: "1236", sha: "b".repeat(40) })) });
    expect((await rows())[0]!.count).toBe(1);
    now += SEEN_IDENTITIES_FLUSH_MS;
    const denied = await app.request("/v1/credentials/oidc-any", {
      method: "POST",
      headers: bearer(await app.ciToken({ ref: "feature", job_id: "1237" })),
    });
    expect(denied.status).toBe(403);

    const [main, feature] = await rows();
    expect(main).toMatchObject({ issuer: "ci", count: 3, last_decision: "allow" });
    expect(JSON.parse(main!.targets)).toEqual(["oidc-any"]);
    const claims = JSON.parse(main!.claims) as Record<string, unknown>;
    expect(claims).toMatchObject({
      project_id: "42",
      ref: "main",
      groups_direct: ["platform", "ops"],
      user_login: "alice",
    });
    for (const unrecorded of ["jti", "job_id", "pipeline_id", "sha", "iat", "exp", "nbf", "iss", "runner_id"])
      expect(claims).not.toHaveProperty(unrecorded);
    expect(Object.keys(claims)).toEqual(Object.keys(claims).sort());
    expect(feature).toMatchObject({ count: 1, last_decision: "deny" });
    const stored = JSON.stringify(await rows());
    expect(stored).not.toContain(token);
    expect(stored).not.toContain(await tokenDigest(token));
  });

  it("records nothing for a caller whose token did not verify", async () => {
    const app = await createHarness();
    await app.scenario();
    const expired = await app.ciToken({}, { ttl: -600 });
    expect((await app.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer(expired) })).status).toBe(
      401,
    );
    expect(await rows()).toEqual([]);
  });

  it("keeps a bounded list of notes, counts what it leaves out, and merges targets on conflict", async () => {
    let now = 1_000_000;
    const recorder = new SeenIdentityRecorder({ now: () => now });
    const id = identity(now / 1000);
    const first = recorder.note(env as Env, id, "a", "allow"); // the first note flushes at once
    // While that flush is under way, notes wait in a list of bounded length; beyond it they are counted.
    for (let i = 0; i < MAX_SEEN_IDENTITY_NOTES; i++)
      expect(recorder.note(env as Env, id, "b", "allow")).toBeUndefined();
    expect(recorder.note(env as Env, id, "c", "deny")).toBeUndefined();
    expect(recorder.dropped).toBe(1);
    await first;
    expect((await rows())[0]).toMatchObject({ count: 1, targets: '["a"]' });
    // A full list flushes without waiting for the interval.
    await recorder.note(env as Env, id, "a", "deny");
    expect(recorder.dropped).toBe(2);
    const [row] = await rows();
    expect(row).toMatchObject({ count: 1 + MAX_SEEN_IDENTITY_NOTES, last_decision: "allow" });
    expect(JSON.parse(row!.targets)).toEqual(["a", "b"]);
    now += SEEN_IDENTITIES_FLUSH_MS;
    await recorder.note(env as Env, id, "d", "deny");
    expect((await rows())[0]).toMatchObject({ count: 2 + MAX_SEEN_IDENTITY_NOTES, last_decision: "deny" });
    expect(JSON.parse((await rows())[0]!.targets)).toEqual(["a", "b", "d"]);
  });

  it("does not record a claim set over the size cap, and counts it", async () => {
    const recorder = new SeenIdentityRecorder({ now: () => 0 });
    const huge = identity(0, {
      claims: { ...CI_CLAIMS, groups_direct: Array.from({ length: 200 }, (_, i) => `group-${i}-${"x".repeat(40)}`) },
    });
    expect(recordedClaims(huge.claims)).toBeUndefined();
    await recorder.note(env as Env, huge, "a", "allow");
    expect(recorder.dropped).toBe(1);
    expect(await rows()).toEqual([]);
  });

  it("logs a failed flush with its counts, never its claims", async () => {
    const logged: string[] = [];
    const original = console.error;
    console.error = (line: string) => void logged.push(line);
    try {
      const recorder = new SeenIdentityRecorder({ now: () => 0 });
      const broken = {
        DB: {
          prepare: () => {
            throw new Error("D1 is down");
          },
        },
      } as unknown as Env;
      await recorder.note(broken, identity(0), "a", "allow");
      expect(recorder.failures).toBe(1);
    } finally {
      console.error = original;
    }
    expect(JSON.parse(logged[0]!)).toMatchObject({
      event: "seen_identities_flush_failed",
      identities: 1,
      notes: 1,
      error: { message: "D1 is down" },
    });
    expect(logged[0]).not.toContain("platform/infra");
  });

  it("prunes rows older than the retention, then the least recently seen beyond the cap", async () => {
    const day = 86_400_000;
    const now = Date.UTC(2026, 11, 7);
    const insert = (key: string, lastSeen: number) =>
      env.DB.prepare(
        "INSERT INTO seen_identities (claims_sha256, issuer, claims, first_seen, last_seen, count) VALUES (?, 'ci', '{}', ?, ?, 1)",
      )
        .bind(key, new Date(lastSeen).toISOString(), new Date(lastSeen).toISOString())
        .run();
    await insert("old", now - 100 * day);
    for (const [key, age] of [
      ["a", 1],
      ["b", 2],
      ["c", 3],
    ] as const)
      await insert(key, now - age * day);
    expect(await pruneSeenIdentities(env as Env, 90, now, 2)).toBe(2);
    expect((await rows()).map((row) => row.claims_sha256).sort()).toEqual(["a", "b"]);
  });
});

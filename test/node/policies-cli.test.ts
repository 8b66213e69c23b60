// The policies CLI end to end against local KV and D1 in a temporary --persist-to directory: in
// process, with wrangler's local commands answered in process by cli/local-storage.ts (which
// test/node/local-wrangler.test.ts holds to wrangler's own behaviour), and history and rollback once
// as an operator runs them (a process), read back by wrangler itself.
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeLocalStorage, spawnWrangler, wrangler } from "../../cli/wrangler";
import {
  chunks,
  historyBody,
  historySnapshotText,
  recordVersionSql,
  sqlString,
  unusedChunkKeys,
} from "../../cli/policy/policy-storage";
import { D1_SQL_CHUNK_BYTES, POLICY_KV_CHUNK_BYTES } from "../../src/limits";
import { loadSnapshot, readStoredHeader } from "../../src/policy/load-snapshot";
import { normalizePolicy } from "../../src/policy/policy-schema";
import { buildSnapshot, canonicalJson, payloadChunks, storedSnapshot } from "../../src/policy/snapshot-format";
import { payloadChunkKey } from "../../src/policy/active-policy";
import { gatepassInProcess, gatepassProcess, type CliResult } from "../support/cli";
import { copyMigratedState } from "../support/wrangler-dev";

const ROOT = path.resolve(__dirname, "../..");

const gatepass = (...args: string[]) => gatepassInProcess("policies", ...args);

let work: string;
let persist: string;
const storage = () => ["--local", "--persist-to", persist];

async function kvGet(key: string): Promise<string | undefined> {
  // wrangler prints the value followed by a newline, and a missing key as a message.
  const out = (
    await wrangler(["kv", "key", "get", key, "--binding", "POLICIES", "--text", ...storage()], { cwd: ROOT })
  ).replace(/\n$/, "");
  return out.startsWith("{") || key !== "active" ? out : undefined;
}

/** What the Worker would load: `active`'s header, a newline, and the chunks it points at. */
async function activeSnapshot(): Promise<string | undefined> {
  const header = await kvGet("active");
  if (header === undefined) return undefined;
  const { chunks: count, version, index_sha256 } = readStoredHeader(header);
  const parts = await Promise.all(
    Array.from({ length: count }, (_, i) => kvGet(payloadChunkKey({ version, index_sha256 }, i))),
  );
  return `${header}\n${parts.join("")}`;
}

async function chunkKeys(): Promise<string[]> {
  const out = await wrangler(["kv", "key", "list", "--binding", "POLICIES", "--prefix", "snapshot:", ...storage()], {
    cwd: ROOT,
  });
  return (JSON.parse(out) as { name: string }[]).map((entry) => entry.name).sort();
}

/** A version no push or rollback names: its chunk is what clean-up deletes. */
const ORPHAN_VERSION = "e".repeat(64);

async function putOrphanChunk(): Promise<void> {
  await wrangler(
    [
      "kv",
      "key",
      "put",
      `snapshot:${ORPHAN_VERSION}:${"f".repeat(64)}:0`,
      "orphan",
      "--binding",
      "POLICIES",
      ...storage(),
    ],
    { cwd: ROOT },
  );
  expect(await chunkKeys()).toContain(`snapshot:${ORPHAN_VERSION}:${"f".repeat(64)}:0`);
}

async function d1(sql: string): Promise<void> {
  const file = path.join(await mkdtemp(path.join(tmpdir(), "gatepass-sql-")), "statements.sql");
  await writeFile(file, sql);
  await wrangler(["d1", "execute", "DB", "--file", file, "--yes", ...storage()], { cwd: ROOT });
}

/** A history row as push wrote it before migration 0002: the whole snapshot in the row. */
function legacyRowSql(
  snapshot: { version: string; source_digest: string },
  text: string,
  pushedBy: string,
  pushedAt: string,
): string {
  return `INSERT INTO policy_versions (version, source_digest, snapshot, pushed_by, pushed_at, active) VALUES (${sqlString(snapshot.version)}, ${sqlString(snapshot.source_digest)}, ${sqlString(text)}, ${sqlString(pushedBy)}, ${sqlString(pushedAt)}, 0);\n`;
}

async function versions(): Promise<{ version: string; pushed_by: string; active: number }[]> {
  const out = await wrangler(
    [
      "d1",
      "execute",
      "DB",
      "--json",
      "--command",
      "SELECT version, pushed_by, active FROM policy_versions ORDER BY version",
      ...storage(),
    ],
    { cwd: ROOT },
  );
  return (JSON.parse(out) as { results: { version: string; pushed_by: string; active: number }[] }[])[0]!.results;
}

/** A copy of the example policies to modify. */
async function policyCopy(name: string): Promise<string> {
  const dir = path.join(work, name);
  await cp(path.join(ROOT, "policies"), dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-policies-cli-"));
  persist = path.join(work, "state");
  await copyMigratedState(persist);
});

afterAll(async () => {
  await closeLocalStorage();
  await rm(work, { recursive: true, force: true });
});

describe("policies validate", () => {
  it("accepts the example policies", async () => {
    const result = await gatepass("validate");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/policies are valid: 4 issuers, 6 targets, \d+ rules \(version [0-9a-f]{64}\)/);
  });

  it("reports errors with file:line:column and exits 1", async () => {
    const dir = await policyCopy("invalid");
    const rules = await readFile(path.join(dir, "rules.yaml"), "utf8");
    await writeFile(
      path.join(dir, "rules.yaml"),
      rules.replace("allow: [gcp-deployer, aws-readonly]", "allow: [gcp-deployer, nope]\n    unknown_key: 1"),
    );
    const result = await gatepass("validate", "--dir", dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/rules\.yaml:\d+:\d+: error: unknown key 'unknown_key'/);
    expect(result.stderr).toMatch(/rules\.yaml:\d+:\d+: error: unknown target 'nope'/);
  });

  it("refuses lint errors with their code", async () => {
    const dir = await policyCopy("lint");
    const rules = await readFile(path.join(dir, "rules.yaml"), "utf8");
    await writeFile(
      path.join(dir, "rules.yaml"),
      rules.replace(
        '      ref_protected: "true"\n      pipeline_source: [push, web, schedule]\n    allow: [gcp-deployer',
        "    allow: [gcp-deployer",
      ),
    );
    const result = await gatepass("validate", "--dir", dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /rules\.yaml:\d+:\d+: error: privileged target\(s\) gcp-deployer must only be reachable from protected refs.*\[privileged-unprotected-ref\]/,
    );
  });
});

describe("policies test", () => {
  it("passes the example policy tests", async () => {
    const result = await gatepass("test");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^PASS rules\.test\.yaml:\d+ /m);
    expect(result.stdout).toMatch(/(\d+)\/\1 policy test cases passed/);
  });

  it("reports failing cases with the closest rule's failed conditions and exits 1", async () => {
    const dir = await policyCopy("failing-test");
    await writeFile(
      path.join(dir, "extra.test.yaml"),
      `cases:\n  - name: wrong expectation\n    issuer: corp-gitlab\n    claims: { project_id: "101", project_path: platform/infra, namespace_path: platform, ref: dev, ref_type: branch, ref_protected: "true", pipeline_source: push }\n    expect:\n      gcp-deployer: allow\n      aws-readonly: deny\n`,
    );
    const result = await gatepass("test", "--dir", dir);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("FAIL extra.test.yaml:2 wrong expectation");
    expect(result.stdout).toContain(
      `gcp-deployer: expected allow, got deny (closest rule 'infra-main-deploys' fails on ref="dev")`,
    );
    expect(result.stdout).toContain("aws-readonly: expected deny, got allow by rule 'platform-reads'");
  });

  it("refuses malformed test files with file:line", async () => {
    const dir = await policyCopy("bad-test");
    await writeFile(
      path.join(dir, "bad.test.yaml"),
      "cases:\n  - name: x\n    claims: {}\n    expect: { ghost: allow }\n",
    );
    const result = await gatepass("test", "--dir", dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/bad\.test\.yaml:4:\d+: error: unknown target 'ghost'/);
  });

  it("refuses numbers in test claims that would not read back as written (0x10 is not '16')", async () => {
    const dir = await policyCopy("hex-test");
    await writeFile(
      path.join(dir, "hex.test.yaml"),
      "cases:\n  - name: x\n    issuer: corp-gitlab\n    claims: { project_id: 0x10 }\n    expect: { vault-ci: deny }\n",
    );
    const result = await gatepass("test", "--dir", dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'hex.test.yaml:4:27: error: the number 0x10 would be read as 16: write it in plain decimal (16), or quote it ("0x10") if it is text',
    );
  });
});

describe("policies push, history, rollback", () => {
  let first: string;
  let second: string;

  it("pushes: KV holds a snapshot the Worker accepts, D1 records it as active with who", async () => {
    const result = await gatepass("push", ...storage(), "--by", "alice@example.com");
    expect(result.stderr).not.toMatch(/error/i);
    expect(result.code).toBe(0);
    first = /pushed policy version ([0-9a-f]{64})/.exec(result.stdout)![1]!;
    const text = await activeSnapshot();
    expect((await loadSnapshot(text!)).version).toBe(first);
    expect(await versions()).toEqual([{ version: first, pushed_by: "alice@example.com", active: 1 }]);
  });

  it("a push that fails validation changes nothing", async () => {
    const before = await activeSnapshot();
    const dir = await policyCopy("push-invalid");
    await writeFile(path.join(dir, "targets.yaml"), "targets:\n  - name: broken\n    type: aws\n");
    const result = await gatepass("push", "--dir", dir, ...storage(), "--by", "mallory");
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/push refused: the policies are invalid; nothing was changed/);
    expect(await activeSnapshot()).toBe(before);
    expect(await versions()).toEqual([{ version: first, pushed_by: "alice@example.com", active: 1 }]);
  });

  it("a push whose policy tests fail changes nothing", async () => {
    const dir = await policyCopy("push-failing-tests");
    const rules = await readFile(path.join(dir, "rules.yaml"), "utf8");
    await writeFile(path.join(dir, "rules.yaml"), rules.replace("ref: main", "ref: master"));
    const result = await gatepass("push", "--dir", dir, ...storage(), "--by", "mallory");
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/policy tests fail; nothing was changed/);
    expect(await versions()).toHaveLength(1);
  });

  it("a push D1 refuses writes nothing to KV: history first, so KV never names a version D1 does not know", async () => {
    const before = await activeSnapshot();
    const keysBefore = await chunkKeys();
    const dir = await policyCopy("push-d1-refuses");
    const targets = await readFile(path.join(dir, "targets.yaml"), "utf8");
    await writeFile(
      path.join(dir, "targets.yaml"),
      targets.replace("Read-only access to the shared AWS account.", "refused by D1"),
    );
    await d1(
      "CREATE TRIGGER refuse_versions BEFORE INSERT ON policy_versions BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    );
    let result: CliResult;
    try {
      result = await gatepass("push", "--dir", dir, ...storage(), "--by", "mallory");
    } finally {
      await d1("DROP TRIGGER refuse_versions;");
    }
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("refused by the test");
    expect(await activeSnapshot()).toBe(before);
    expect(await chunkKeys()).toEqual(keysBefore);
    expect(await versions()).toEqual([{ version: first, pushed_by: "alice@example.com", active: 1 }]);
  });

  it("pushes a second version with quotes and semicolons in its text (escaped SQL), moving the active flag", async () => {
    const dir = await policyCopy("second");
    const targets = await readFile(path.join(dir, "targets.yaml"), "utf8");
    await writeFile(
      path.join(dir, "targets.yaml"),
      targets.replace(
        "Read-only access to the shared AWS account.",
        `"It's read-only; DROP TABLE policy_versions; -- é"`,
      ),
    );
    const result = await gatepass("push", "--dir", dir, ...storage(), "--by", "o'brien");
    expect(result.code).toBe(0);
    second = /pushed policy version ([0-9a-f]{64})/.exec(result.stdout)![1]!;
    expect(second).not.toBe(first);
    const policy = await loadSnapshot((await activeSnapshot())!);
    expect(policy.targets.get("aws-readonly")?.description).toBe("It's read-only; DROP TABLE policy_versions; -- é");
    const rows = await versions();
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.version === second)).toEqual({ version: second, pushed_by: "o'brien", active: 1 });
    expect(rows.find((r) => r.version === first)?.active).toBe(0);
  });

  it("lists the history with the active version marked", async () => {
    const result = await gatepass("history", ...storage());
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^\\* ${second} .* o'brien`));
    expect(lines[1]).toMatch(new RegExp(`^  ${first} .* alice@example.com`));
  });

  it("rolls back to a version by prefix: KV gets the stored snapshot, D1 the active flag", async () => {
    const result = await gatepass("rollback", first.slice(0, 12), ...storage());
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`rolled back to policy version ${first}`);
    expect((await loadSnapshot((await activeSnapshot())!)).version).toBe(first);
    expect((await versions()).find((r) => r.active === 1)?.version).toBe(first);
  });

  it("refuses to roll back to an unknown version, or to a stored snapshot that is corrupt", async () => {
    expect((await gatepass("rollback", "0123456789abcdef", ...storage())).code).toBe(1);
    expect((await gatepass("rollback", "not-hex", ...storage())).code).toBe(2);
    await d1(
      `UPDATE policy_history_chunks SET data = replace(data, '"ref":"main"', '"ref":"any"') WHERE version = '${second}';`,
    );
    const before = await activeSnapshot();
    const result = await gatepass("rollback", second, ...storage());
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/rollback refused: .*content hash does not match/);
    expect(await activeSnapshot()).toBe(before);
  });
});

describe("policies rollback to a version today's checks refuse", () => {
  it("is refused with the lint findings, and nothing changes", async () => {
    // A version stored before a check existed: valid and canonical, but a rule matches ref without ref_type.
    const active = (await loadSnapshot((await activeSnapshot())!)).snapshot;
    const rules = active.rules.map((rule) => {
      const { ref_type: _dropped, ...match } = rule.match;
      return { ...rule, match };
    });
    const { policy, problems } = normalizePolicy(
      [{ name: "old", value: { issuers: active.issuers, targets: active.targets, rules } }],
      "snapshot",
    );
    expect(problems).toEqual([]);
    const old = await buildSnapshot(policy, { sourceDigest: "0".repeat(64), createdAt: "2026-01-01T00:00:00.000Z" });
    await loadSnapshot(old.text); // what the Worker would accept
    await d1(legacyRowSql(old.snapshot, old.text, "before-the-check", "2026-01-01T00:00:00.000Z"));

    const before = await activeSnapshot();
    const result = await gatepass("rollback", old.snapshot.version, ...storage());
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /rollback refused: [0-9a-f]{64} fails checks that push runs today; nothing was changed/,
    );
    expect(result.stderr).toContain("ref-without-ref-type");
    expect(await activeSnapshot()).toBe(before);
    expect((await versions()).find((r) => r.version === old.snapshot.version)?.active).toBe(0);
  });
});

/** The version the pre-0002 rollback below makes active. */
let legacyVersion: string;

describe("policies history written before migration 0002", () => {
  it("rolls back to a version whose whole snapshot is in its row", async () => {
    const active = (await loadSnapshot((await activeSnapshot())!)).snapshot;
    const targets = active.targets.map((t) =>
      t.name === "aws-readonly" ? { ...t, description: "kept in a pre-0002 row" } : t,
    );
    const { policy, problems } = normalizePolicy(
      [{ name: "old", value: { issuers: active.issuers, targets, rules: active.rules } }],
      "snapshot",
    );
    expect(problems).toEqual([]);
    const old = await buildSnapshot(policy, { sourceDigest: "1".repeat(64), createdAt: "2026-02-01T00:00:00.000Z" });
    await d1(legacyRowSql(old.snapshot, old.text, "pre-0002", "2026-02-01T00:00:00.000Z"));
    legacyVersion = old.snapshot.version;

    const result = await gatepass("rollback", old.snapshot.version, ...storage());
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const served = await loadSnapshot((await activeSnapshot())!);
    expect(served.version).toBe(old.snapshot.version);
    expect(served.targets.get("aws-readonly")?.description).toBe("kept in a pre-0002 row");
    expect(served.snapshot.created_at).toBe("2026-02-01T00:00:00.000Z");
    expect((await versions()).find((r) => r.active === 1)?.version).toBe(old.snapshot.version);
  });
});

describe("policies push of a large policy", () => {
  const BULK_RULES = 8000;
  let large: string;

  it("stores a snapshot across several KV values and D1 rows", { timeout: 150_000 }, async () => {
    const dir = await policyCopy("large");
    // A 1.2 MB body: more than one D1 row holds (1 MB; pushes stopped at about 5 000 rules when history
    // was one row per version), more than one KV chunk (POLICY_KV_CHUNK_BYTES) and many D1 chunk rows.
    const rules = Array.from(
      { length: BULK_RULES },
      (_, i) =>
        `  - { name: bulk-${i}, issuer: corp-gitlab, match: { project_path: bulk/project-${i}, ref_type: branch, ref: main }, allow: [aws-readonly] }`,
    );
    await writeFile(path.join(dir, "zz-bulk.yaml"), `rules:\n${rules.join("\n")}\n`);
    await putOrphanChunk();
    const pushed = await gatepass("push", "--dir", dir, ...storage(), "--by", "bulk");
    expect(pushed.stderr).toBe("");
    expect(pushed.code).toBe(0);
    large = /pushed policy version ([0-9a-f]{64})/.exec(pushed.stdout)![1]!;
    const text = (await activeSnapshot())!;
    const header = readStoredHeader(text.slice(0, text.indexOf("\n")));
    expect(header.chunks).toBeGreaterThan(1);
    const policy = await loadSnapshot(text);
    expect(policy.version).toBe(large);
    expect(policy.ruleCount).toBe(BULK_RULES + 9);
    const stored = await wrangler(
      [
        "d1",
        "execute",
        "DB",
        "--json",
        "--command",
        `SELECT count(*) AS n, sum(length(data)) AS bytes FROM policy_history_chunks WHERE version = '${large}'`,
        ...storage(),
      ],
      { cwd: ROOT },
    );
    const row = (JSON.parse(stored) as { results: { n: number; bytes: number }[] }[])[0]!.results[0]!;
    expect(row.bytes).toBe(header.body_length);
    expect(row.bytes).toBeGreaterThan(1_000_000);
    expect(row.n).toBe(Math.ceil(header.body_length / D1_SQL_CHUNK_BYTES));
    // KV keeps the chunks of the new snapshot, of the one it replaced (and of every version a push or
    // rollback touched within CHUNK_GRACE_SECONDS), and deletes chunks no reader can be sent to.
    const kept = new Set((await chunkKeys()).map((key) => key.split(":")[1]));
    expect(kept).toContain(large);
    expect(kept).toContain(legacyVersion);
    expect(kept).not.toContain(ORPHAN_VERSION);
  });

  it("rolls back to it from its D1 chunks", { timeout: 150_000 }, async () => {
    const dir = await policyCopy("after-large");
    const targets = await readFile(path.join(dir, "targets.yaml"), "utf8");
    await writeFile(
      path.join(dir, "targets.yaml"),
      targets.replace("Read-only access to the shared AWS account.", "after the large one"),
    );
    expect((await gatepass("push", "--dir", dir, ...storage(), "--by", "small")).code).toBe(0);
    const small = (await loadSnapshot((await activeSnapshot())!)).version;

    await putOrphanChunk();
    const rolled = await gatepass("rollback", large.slice(0, 16), ...storage());
    expect(rolled.stderr).toBe("");
    expect(rolled.code).toBe(0);
    const served = await loadSnapshot((await activeSnapshot())!);
    expect(served.version).toBe(large);
    expect(served.ruleCount).toBe(BULK_RULES + 9);
    expect((await versions()).find((r) => r.active === 1)?.version).toBe(large);
    const kept = new Set((await chunkKeys()).map((key) => key.split(":")[1]));
    expect(kept).toContain(large);
    expect(kept).toContain(small);
    expect(kept).not.toContain(ORPHAN_VERSION);
  });
});

describe("the storage layout (pure functions)", () => {
  const snapshotFor = async (ruleCount: number) => {
    const issuers = [{ name: "ci", url: "https://ci.example", kind: "gitlab", audiences: ["gp"] }];
    const targets = [{ name: "t", type: "oidc", audience: "rp" }];
    const rules = Array.from({ length: ruleCount }, (_, i) => ({
      name: `r${i}`,
      issuer: "ci",
      match: { project_path: `g/p-${i}`, ref: "it's" },
      allow: ["t"],
    }));
    const { policy, problems } = normalizePolicy([{ name: "p", value: { issuers, targets, rules } }], "source");
    expect(problems).toEqual([]);
    return (await buildSnapshot(policy, { sourceDigest: "0".repeat(64), createdAt: "2026-03-01T00:00:00.000Z" }))
      .snapshot;
  };

  it("writes the history body in statements below D1's limit, the row last, and reads back the same snapshot", async () => {
    const snapshot = await snapshotFor(3000);
    const sql = recordVersionSql(snapshot, "o'brien", "2026-03-02T00:00:00.000Z").trimEnd().split("\n");
    const body = historyBody(snapshot);
    const pieces = chunks(body, D1_SQL_CHUNK_BYTES);
    expect(pieces.length).toBeGreaterThan(3);
    expect(sql).toHaveLength(pieces.length + 2);
    for (const statement of sql) expect(statement.length).toBeLessThan(100_000);
    expect(sql.at(-1)).toMatch(/^INSERT INTO policy_versions .*'o''brien'/);
    expect(sql.at(-2)).toBe(
      `DELETE FROM policy_history_chunks WHERE version = '${snapshot.version}' AND seq >= ${pieces.length};`,
    );
    const text = historySnapshotText(
      {
        version: snapshot.version,
        source_digest: snapshot.source_digest,
        pushed_at: "2026-03-02T00:00:00.000Z",
        snapshot: "",
      },
      pieces.join(""),
    );
    expect((await loadSnapshot(text)).snapshot.created_at).toBe("2026-03-02T00:00:00.000Z");
    expect(text).toBe(canonicalJson({ ...snapshot, created_at: "2026-03-02T00:00:00.000Z" }));
    // A row from before 0002 is its own snapshot text.
    expect(
      historySnapshotText({ version: "v", source_digest: "d", pushed_at: "x", snapshot: "whole" }, undefined),
    ).toBe("whole");
  });

  it("cuts the payload into KV chunks of at most POLICY_KV_CHUNK_BYTES and keeps only the chunks of the snapshots given", async () => {
    const stored = await storedSnapshot(await snapshotFor(8000));
    const pieces = payloadChunks(stored.payload);
    expect(pieces.length).toBe(stored.header.chunks);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.every((piece) => piece.length <= POLICY_KV_CHUNK_BYTES)).toBe(true);
    expect(pieces.join("")).toBe(stored.payload);
    const other = { version: "b".repeat(64), index_sha256: "c".repeat(64) };
    const keys = [
      ...pieces.map((_, i) => payloadChunkKey(stored.header, i)),
      payloadChunkKey(other, 0),
      payloadChunkKey(other, 1),
      "unrelated",
    ];
    expect(unusedChunkKeys(keys, [stored.header.version])).toEqual([
      payloadChunkKey(other, 0),
      payloadChunkKey(other, 1),
    ]);
    expect(unusedChunkKeys(keys, [stored.header.version, other.version])).toEqual([]);
  });
});

describe("policies explain and schema", () => {
  it("explains grants and failed conditions for claims", async () => {
    const claims = path.join(work, "claims.json");
    await writeFile(
      claims,
      JSON.stringify({
        iss: "https://gitlab.example.com",
        project_path: "platform/infra",
        namespace_path: "platform",
        ref: "feature/x",
        ref_type: "branch",
        ref_protected: false,
        pipeline_source: "push",
      }),
    );
    const result = await gatepass("explain", "--claims", claims, "--target", "gcp-deployer");
    expect(result.code).toBe(1); // DENY
    expect(result.stdout).toContain("issuer corp-gitlab; grants: aws-readonly (rule platform-reads)");
    expect(result.stdout).toContain("gcp-deployer: DENY");
    expect(result.stdout).toContain(`ref: token has "feature/x", rule wants "main"`);
    expect(result.stdout).toContain(`ref_protected: token has "false", rule wants "true"`);
  });

  it("prints the JSON Schema, identical to the committed policies/schema.json", async () => {
    const result = await gatepass("schema");
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(
      JSON.parse(await readFile(path.join(ROOT, "policies/schema.json"), "utf8")),
    );
  });
});

describe("policies history and rollback as an operator runs them: a process, read back by wrangler itself", () => {
  // A push as a process with real wrangler runs in e2e.test.ts (and in every `gatepass dev` start).
  const asProcess = (...args: string[]) => gatepassProcess(["policies", ...args], { cwd: ROOT });

  // A rollback under the write lease is a dozen wrangler runs (docs/storage.md, "Write protocol").
  it("lists two versions pushed in process, and rolls back to the first", { timeout: 240_000 }, async () => {
    const state = path.join(work, "operator-state");
    const flags = ["--local", "--persist-to", state];
    await copyMigratedState(state);
    const earlier = await gatepass("push", ...flags, "--by", "in-process");
    expect(earlier.code).toBe(0);
    const first = /pushed policy version ([0-9a-f]{64})/.exec(earlier.stdout)![1]!;
    const dir = await policyCopy("operator");
    const targets = await readFile(path.join(dir, "targets.yaml"), "utf8");
    await writeFile(
      path.join(dir, "targets.yaml"),
      targets.replace("Read-only access to the shared AWS account.", "pushed second"),
    );
    const later = await gatepass("push", "--dir", dir, ...flags, "--by", "in-process");
    expect(later.code).toBe(0);
    const second = /pushed policy version ([0-9a-f]{64})/.exec(later.stdout)![1]!;
    await closeLocalStorage(); // the processes below open the state themselves

    const history = await asProcess("history", ...flags);
    expect(history.stderr).toBe("");
    expect(history.code).toBe(0);
    expect(
      history.stdout
        .trim()
        .split("\n")
        .map((line) => line.slice(0, 66)),
    ).toEqual([`* ${second}`, `  ${first}`]);

    const rolled = await asProcess("rollback", first.slice(0, 12), ...flags);
    expect(rolled.stderr).toBe("");
    expect(rolled.code).toBe(0);
    const header = await spawnWrangler(["kv", "key", "get", "active", "--binding", "POLICIES", "--text", ...flags], {
      cwd: ROOT,
    });
    expect(readStoredHeader(header.stdout.trimEnd()).version).toBe(first);
  });
});

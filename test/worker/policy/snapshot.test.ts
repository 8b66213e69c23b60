import { describe, expect, it } from "vitest";
import { isGatepassError } from "../../../src/errors";
import { MAX_POLICY_SNAPSHOT_BYTES } from "../../../src/limits";
import { loadSnapshot } from "../../../src/policy/compile";
import { evaluate } from "../../../src/policy/evaluate";
import { sha256Hex } from "../../../src/encoding";
import { buildSnapshot, canonicalJson, snapshotBody, snapshotVersion, sourceDigest } from "../../../src/policy/snapshot";
import { checkPolicySources } from "../../../src/policy/source";
import { identity, ISSUERS_YAML, RULES_YAML, snapshotOf, sources, TARGETS_YAML } from "./fixtures";

async function refusal(text: string): Promise<string> {
  try {
    await loadSnapshot(text);
  } catch (err) {
    if (isGatepassError(err)) return `${err.code}: ${err.description}`;
    throw err;
  }
  throw new Error("the snapshot was accepted");
}

/** Re-serialises a modified snapshot with a correct hash, so only the modification is wrong. */
async function rehash(mutate: (s: Record<string, unknown>) => void): Promise<string> {
  const { snapshot } = await snapshotOf();
  const copy = structuredClone(snapshot) as unknown as Record<string, unknown>;
  mutate(copy);
  const { version: _v, source_digest: _d, created_at: _c, ...body } = copy;
  copy.version = await sha256Hex(canonicalJson(body));
  return canonicalJson(copy);
}

describe("snapshots", () => {
  it("are canonical JSON (sorted keys, ASCII only)", () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: "é😀" } })).toBe('{"a":{"c":"\\u00e9\\ud83d\\ude00","d":[{"y":2,"z":1}]},"b":1}');
    expect(JSON.parse(canonicalJson({ s: "é😀" }))).toEqual({ s: "é😀" });
  });

  it("get the same version from the same sources whatever their layout, comments or push time", async () => {
    const a = await snapshotOf();
    const reordered = sources({
      issuers: `# a comment\n${ISSUERS_YAML}`,
      targets: `targets:\n${TARGETS_YAML.split("\n  - ").slice(1).reverse().map((t) => `  - ${t.trimEnd()}`).join("\n")}\n`,
    });
    const checked = checkPolicySources(reordered);
    const b = await buildSnapshot(checked.policy!, { sourceDigest: "1".repeat(64), createdAt: "2030-01-01T00:00:00.000Z" });
    expect(b.snapshot.version).toBe(a.snapshot.version);
    expect(b.snapshot.version).toMatch(/^[0-9a-f]{64}$/);
    const changed = await snapshotOf(sources({ rules: RULES_YAML.replace("ref: main", "ref: master") }));
    expect(changed.snapshot.version).not.toBe(a.snapshot.version);
  });

  it("digest the source files by name and bytes", async () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    const one = await sourceDigest([{ name: "a.yaml", bytes: bytes("x") }, { name: "b.yaml", bytes: bytes("y") }]);
    expect(await sourceDigest([{ name: "b.yaml", bytes: bytes("y") }, { name: "a.yaml", bytes: bytes("x") }])).toBe(one);
    expect(await sourceDigest([{ name: "a.yaml", bytes: bytes("y") }, { name: "b.yaml", bytes: bytes("x") }])).not.toBe(one);
  });
});

describe("loadSnapshot", () => {
  it("accepts what push writes and evaluates like the sources", async () => {
    const { snapshot, text } = await snapshotOf();
    const policy = await loadSnapshot(text);
    expect(policy.version).toBe(snapshot.version);
    expect(policy.snapshot).toEqual(snapshot);
    expect(evaluate(policy, identity(), "deployer")).toMatchObject({ allowed: true, rule: "infra-main" });
  });

  it("refuses text that is not a snapshot object", async () => {
    expect(await refusal("not json")).toMatch(/^policy_invalid: .*not JSON/);
    expect(await refusal("[]")).toMatch(/not a JSON object/);
    expect(await refusal("x".repeat(MAX_POLICY_SNAPSHOT_BYTES + 1))).toMatch(/larger than/);
  });

  it("refuses a snapshot whose content does not hash to its version (tampering, truncation)", async () => {
    const { text, snapshot } = await snapshotOf();
    expect(await refusal(text.replace('"ref":"main"', '"ref":"dev"'))).toMatch(/content hash does not match/);
    expect(await refusal(text.replace(snapshot.version, "f".repeat(64)))).toMatch(/content hash does not match/);
    expect(await refusal(text.slice(0, -1))).toMatch(/not JSON/);
  });

  it("refuses unknown or missing top-level fields and unsupported formats", async () => {
    expect(await refusal(await rehash((s) => (s.extra = 1)))).toMatch(/its keys are/);
    expect(await refusal(await rehash((s) => delete s.rules))).toMatch(/its keys are/);
    expect(await refusal(await rehash((s) => (s.format = 2)))).toMatch(/format 2 is not supported/);
    expect(await refusal(await rehash((s) => (s.created_at = "yesterday")))).toMatch(/created_at/);
  });

  it("refuses a version or source digest that is not a SHA-256 hex digest", async () => {
    const { text, snapshot } = await snapshotOf();
    // Upper case hashes to nothing loadSnapshot would compute, but the format check names the problem first.
    expect(await refusal(text.replace(snapshot.version, snapshot.version.toUpperCase()))).toMatch(/version is not a SHA-256 hex digest/);
    expect(await refusal(text.replace(snapshot.source_digest, "not-a-digest"))).toMatch(/source_digest is not a SHA-256 hex digest/);
    expect(await refusal(text.replace(`"source_digest":"${snapshot.source_digest}"`, '"source_digest":7'))).toMatch(/source_digest is not/);
  });

  it("refuses invalid content even when it hashes correctly", async () => {
    expect(await refusal(await rehash((s) => ((s.rules as { allow: string[] }[])[0]!.allow = ["ghost"])))).toMatch(/rules\[0\]\.allow\[0\]: unknown target 'ghost'/);
    expect(await refusal(await rehash((s) => ((s.rules as { match: unknown }[])[0]!.match = { project_path: "a**" })))).toMatch(/whole path segment/);
    expect(await refusal(await rehash((s) => ((s.targets as { type: string }[])[0]!.type = "ftp")))).toMatch(/'type' must be one of/);
    // Source-only spellings are not accepted in a snapshot.
    expect(await refusal(await rehash((s) => ((s.rules as { match: unknown }[])[0]!.match = { project_path: "a/b", ref_protected: true })))).toMatch(/expected a string/);
  });

  it("keeps loading a snapshot pushed before azure targets were RS256 only (policy files may no longer say ES256)", async () => {
    const azure = { name: "azure-old", type: "azure", privileged: false, signing_alg: "ES256", max_lifetime_seconds: 3600,
      tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47", client_id: "0b2a7a33-5a5d-4a2a-9d3e-1f2c3b4a5d6e",
      scope: "https://management.azure.com/.default", audience: "api://AzureADTokenExchange" };
    const text = await rehash((s) => {
      const targets = s.targets as { name: string }[];
      targets.push(azure);
      targets.sort((a, b) => (a.name < b.name ? -1 : 1));
    });
    expect((await loadSnapshot(text)).targets.get("azure-old")).toMatchObject({ signing_alg: "ES256" });
  });

  it("refuses a snapshot that is not in canonical form (defaults missing, unsorted, non-canonical URLs)", async () => {
    expect(await refusal(await rehash((s) => delete (s.issuers as { algorithms?: unknown }[])[0]!.algorithms))).toMatch(/not in canonical form/);
    expect(await refusal(await rehash((s) => (s.targets as unknown[]).reverse()))).toMatch(/not in canonical form/);
    expect(await refusal(await rehash((s) => ((s.issuers as { url: string }[])[0]!.url = "https://GITLAB.example.com/")))).toMatch(/not in canonical form/);
  });

  it("hashes only the body", async () => {
    const { snapshot } = await snapshotOf();
    expect(await snapshotVersion(snapshotBody(snapshot))).toBe(snapshot.version);
  });
});

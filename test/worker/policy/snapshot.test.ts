import { describe, expect, it, vi } from "vitest";
import { isGatepassError } from "../../../src/errors";
import { MAX_POLICY_SNAPSHOT_BYTES } from "../../../src/limits";
import { loadSnapshot, verifySnapshot } from "../../../src/policy/load-snapshot";
import { evaluate } from "../../../src/policy/evaluate";
import { sha256Hex } from "../../../src/encoding";
import {
  BODY_PARTS,
  buildSnapshot,
  canonicalJson,
  snapshotBody,
  snapshotVersion,
  sourceDigest,
  STORED_HEADER_START,
  storedSnapshot,
  type StoredIndex,
} from "../../../src/policy/snapshot-format";
import { checkPolicySources } from "../../../src/policy/policy-source";
import { identity, INFRA_MAIN, ISSUERS_YAML, RULES_YAML, snapshotOf, sources, TARGETS_YAML } from "./fixtures";

async function refusal(text: string, load: (text: string) => Promise<unknown> = loadSnapshot): Promise<string> {
  try {
    await load(text);
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
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: "é😀" } })).toBe(
      '{"a":{"c":"\\u00e9\\ud83d\\ude00","d":[{"y":2,"z":1}]},"b":1}',
    );
    expect(JSON.parse(canonicalJson({ s: "é😀" }))).toEqual({ s: "é😀" });
  });

  it("get the same version from the same sources whatever their layout, comments or push time", async () => {
    const a = await snapshotOf();
    const reordered = sources({
      issuers: `# a comment\n${ISSUERS_YAML}`,
      targets: `targets:\n${TARGETS_YAML.split("\n  - ")
        .slice(1)
        .reverse()
        .map((t) => `  - ${t.trimEnd()}`)
        .join("\n")}\n`,
    });
    const checked = checkPolicySources(reordered);
    const b = await buildSnapshot(checked.policy!, {
      sourceDigest: "1".repeat(64),
      createdAt: "2030-01-01T00:00:00.000Z",
    });
    expect(b.snapshot.version).toBe(a.snapshot.version);
    expect(b.snapshot.version).toMatch(/^[0-9a-f]{64}$/);
    const changed = await snapshotOf(sources({ rules: RULES_YAML.replace("ref: main", "ref: master") }));
    expect(changed.snapshot.version).not.toBe(a.snapshot.version);
  });

  it("digest the source files by name and bytes", async () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    const one = await sourceDigest([
      { name: "a.yaml", bytes: bytes("x") },
      { name: "b.yaml", bytes: bytes("y") },
    ]);
    expect(
      await sourceDigest([
        { name: "b.yaml", bytes: bytes("y") },
        { name: "a.yaml", bytes: bytes("x") },
      ]),
    ).toBe(one);
    expect(
      await sourceDigest([
        { name: "a.yaml", bytes: bytes("y") },
        { name: "b.yaml", bytes: bytes("x") },
      ]),
    ).not.toBe(one);
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
    expect(await refusal(text.replace(snapshot.version, snapshot.version.toUpperCase()))).toMatch(
      /version is not a SHA-256 hex digest/,
    );
    expect(await refusal(text.replace(snapshot.source_digest, "not-a-digest"))).toMatch(
      /source_digest is not a SHA-256 hex digest/,
    );
    expect(await refusal(text.replace(`"source_digest":"${snapshot.source_digest}"`, '"source_digest":7'))).toMatch(
      /source_digest is not/,
    );
  });

  it("refuses invalid content even when it hashes correctly", async () => {
    expect(await refusal(await rehash((s) => ((s.rules as { allow: string[] }[])[0]!.allow = ["ghost"])))).toMatch(
      /rules\[0\]\.allow\[0\]: unknown target 'ghost'/,
    );
    expect(
      await refusal(await rehash((s) => ((s.rules as { match: unknown }[])[0]!.match = { project_path: "a**" }))),
    ).toMatch(/whole path segment/);
    expect(await refusal(await rehash((s) => ((s.targets as { type: string }[])[0]!.type = "ftp")))).toMatch(
      /'type' must be one of/,
    );
    // Source-only spellings are not accepted in a snapshot.
    expect(
      await refusal(
        await rehash(
          (s) => ((s.rules as { match: unknown }[])[0]!.match = { project_path: "a/b", ref_protected: true }),
        ),
      ),
    ).toMatch(/expected a string/);
  });

  it("keeps loading a snapshot pushed before azure targets were RS256 only (policy files may no longer say ES256)", async () => {
    const azure = {
      name: "azure-old",
      type: "azure",
      privileged: false,
      signing_alg: "ES256",
      max_lifetime_seconds: 3600,
      tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47",
      client_id: "0b2a7a33-5a5d-4a2a-9d3e-1f2c3b4a5d6e",
      scope: "https://management.azure.com/.default",
      audience: "api://AzureADTokenExchange",
    };
    const text = await rehash((s) => {
      const targets = s.targets as { name: string }[];
      targets.push(azure);
      targets.sort((a, b) => (a.name < b.name ? -1 : 1));
    });
    expect((await loadSnapshot(text)).targets.get("azure-old")).toMatchObject({ signing_alg: "ES256" });
  });

  it("refuses a snapshot that is not in canonical form (defaults missing, unsorted, non-canonical URLs)", async () => {
    expect(await refusal(await rehash((s) => delete (s.issuers as { algorithms?: unknown }[])[0]!.algorithms))).toMatch(
      /not in canonical form/,
    );
    expect(await refusal(await rehash((s) => (s.targets as unknown[]).reverse()))).toMatch(/not in canonical form/);
    expect(
      await refusal(await rehash((s) => ((s.issuers as { url: string }[])[0]!.url = "https://GITLAB.example.com/"))),
    ).toMatch(/not in canonical form/);
  });

  it("hashes only the body", async () => {
    const { snapshot } = await snapshotOf();
    expect(await snapshotVersion(snapshotBody(snapshot))).toBe(snapshot.version);
  });
});

// ---- the stored form (format 2) -----------------------------------------------------------------

interface Parts {
  index: StoredIndex;
  body: string;
  meta: { source_digest: string; created_at: string };
}

async function storedParts(files = sources()): Promise<Parts> {
  const stored = await storedSnapshot((await snapshotOf(files)).snapshot);
  return {
    index: JSON.parse(stored.payload.slice(0, stored.header.index_length)) as StoredIndex,
    body: stored.payload.slice(stored.header.index_length),
    meta: { source_digest: stored.header.source_digest, created_at: stored.header.created_at },
  };
}

/** A stored text whose hashes and header agree with `parts`, so only what was changed in them is wrong. */
async function reseal({ index, body, meta }: Parts): Promise<string> {
  const indexText = canonicalJson(index);
  const header = {
    format: 2,
    version: await sha256Hex(body),
    ...meta,
    index_length: indexText.length,
    index_sha256: await sha256Hex(indexText),
    body_length: body.length,
    chunks: 1,
  };
  return `${canonicalJson(header)}\n${indexText}${body}`;
}

/** The rule texts of a stored body, in order. */
function ruleTexts({ index, body }: Parts): string[] {
  const rulesEnd = body.length - BODY_PARTS.tail.length - index.targets_length - BODY_PARTS.targets.length;
  return index.starts.map((start, i) =>
    body.slice(start, i + 1 < index.starts.length ? index.starts[i + 1]! - 1 : rulesEnd),
  );
}

/** Replaces rule `i`'s text, moving the later rules' starts. */
function withRule(parts: Parts, i: number, text: string): Parts {
  const old = ruleTexts(parts)[i]!;
  const at = parts.index.starts[i]!;
  const index = structuredClone(parts.index);
  index.starts = index.starts.map((start, j) => (j > i ? start + text.length - old.length : start));
  return { ...parts, index, body: parts.body.slice(0, at) + text + parts.body.slice(at + old.length) };
}

/** The fixture's index, to edit: corp-gitlab's rules 0 (exact project), 1 and 2 (namespace prefixes). */
function corp(index: StoredIndex) {
  return index.by_issuer["corp-gitlab"]!;
}

async function lazyRefusal(
  text: string,
  claims: Record<string, string> = INFRA_MAIN,
  target = "reader",
): Promise<string> {
  const policy = await loadSnapshot(text);
  try {
    evaluate(policy, identity(claims), target);
  } catch (err) {
    if (isGatepassError(err)) return `${err.code}: ${policy.refusal}`;
    throw err;
  }
  throw new Error("the rule was accepted");
}

describe("the stored form", () => {
  it("loads and evaluates like the sources, keeps the format 1 version, and is deterministic", async () => {
    const { snapshot, text: whole } = await snapshotOf();
    const stored = await storedSnapshot(snapshot);
    expect(stored.text.startsWith(STORED_HEADER_START)).toBe(true);
    expect(stored.header.version).toBe(snapshot.version);
    expect((await storedSnapshot(snapshot)).text).toBe(stored.text);
    const policy = await loadSnapshot(stored.text);
    expect(policy.version).toBe((await loadSnapshot(whole)).version);
    expect(evaluate(policy, identity(), "deployer")).toMatchObject({ allowed: true, rule: "infra-main" });
    expect(policy.snapshot.rules).toEqual(snapshot.rules);
    expect(await verifySnapshot(stored.text)).toBeDefined();
  });

  it("parses no rule until a token needs it", async () => {
    const policy = await loadSnapshot((await storedSnapshot((await snapshotOf()).snapshot)).text);
    const parse = vi.spyOn(JSON, "parse");
    try {
      evaluate(policy, identity({ namespace_path: "apps/web", groups_direct: ["apps/registry-x"] }), "registry");
      // Only `groups` (filed under namespace_path apps) was parsed, not infra-main or platform-reads.
      expect(parse.mock.calls.map(([text]) => JSON.parse(text as string).name)).toEqual(["groups"]);
    } finally {
      parse.mockRestore();
    }
  });

  it("refuses a header that is not canonical, complete or in range", async () => {
    const { text } = await storedSnapshot((await snapshotOf()).snapshot);
    const [header, payload] = [text.slice(0, text.indexOf("\n")), text.slice(text.indexOf("\n") + 1)];
    const edited = (edit: (h: Record<string, unknown>) => void) => {
      const h = JSON.parse(header) as Record<string, unknown>;
      edit(h);
      return `${canonicalJson(h)}\n${payload}`;
    };
    expect(await refusal(`${header}`)).toMatch(/no payload after its header/);
    expect(await refusal(edited((h) => (h.extra = 1)))).toMatch(/header's keys are/);
    expect(await refusal(edited((h) => (h.format = 3)))).toMatch(/format 3 is not supported/);
    expect(await refusal(edited((h) => (h.chunks = 0)))).toMatch(/chunk count/);
    expect(await refusal(edited((h) => (h.index_length = (h.index_length as number) + 1)))).toMatch(
      /payload is \d+ bytes; the header says/,
    );
    expect(await refusal(`${header.replace('"chunks":1', '"chunks": 1')}\n${payload}`)).toMatch(
      /header is not in canonical form/,
    );
  });

  it("refuses a payload whose index or body does not hash to the header's digests", async () => {
    const { text } = await storedSnapshot((await snapshotOf()).snapshot);
    expect(await refusal(text.replace('"ref":"main"', '"ref":"dev!"'))).toMatch(
      /content hash does not match its version/,
    );
    expect(await refusal(text.replace('"namespace_path"', '"namespace_patX"'))).toMatch(
      /index does not hash to index_sha256/,
    );
  });

  it("refuses an index of the wrong shape, or one that does not place the rules in the body", async () => {
    const parts = await storedParts();
    const edit = async (change: (index: StoredIndex) => void) => {
      const index = structuredClone(parts.index);
      change(index);
      return refusal(await reseal({ ...parts, index }));
    };
    expect(corp(parts.index)).toEqual({
      exact: { project_path: { "platform/infra": [0] } },
      prefix: { namespace_path: { apps: [2], platform: [1] } },
      depth: { namespace_path: 1 },
      scanned: [],
    });
    expect(await edit((index) => (index.starts[0]! += 1))).toMatch(/body does not have the stored layout/);
    expect(await edit((index) => (index.starts = [])).catch(String)).toMatch(/body does not have the stored layout/);
    expect(await edit((index) => (index.targets_length += 1))).toMatch(/does not have the stored layout|not JSON/);
    expect(await edit((index) => ((index as unknown as Record<string, unknown>).extra = 1))).toMatch(
      /index has the wrong keys/,
    );
    expect(await edit((index) => (index.by_issuer.unknown = corp(index)))).toMatch(/index is malformed/);
    expect(await edit((index) => (corp(index).depth.namespace_path = 99))).toMatch(/index is malformed/);
    expect(await edit((index) => ((corp(index) as unknown as Record<string, unknown>).scanned = {}))).toMatch(
      /index is malformed/,
    );
  });

  it("refuses issuers or targets that are invalid or not canonical, at load", async () => {
    const parts = await storedParts();
    const body = parts.body.replace(
      '"audience":"https://registry.example.com"',
      '"audience":"https://registry example.com"',
    );
    expect(await refusal(await reseal({ ...parts, body }))).toMatch(/audience without spaces/);
    const at = parts.body.length - BODY_PARTS.tail.length - parts.index.targets_length;
    const targets = JSON.parse(parts.body.slice(at, -BODY_PARTS.tail.length)) as unknown[];
    const reversed = parts.body.slice(0, at) + canonicalJson(targets.reverse()) + BODY_PARTS.tail;
    expect(await refusal(await reseal({ ...parts, body: reversed }))).toMatch(
      /issuers or targets are not in canonical form/,
    );
  });

  it("refuses a rule when a token first needs it: invalid, not canonical, or not where the index places it", async () => {
    const parts = await storedParts();
    const infra = ruleTexts(parts)[0]!;
    const ghost = infra.replace('"allow":["deployer","reader"]', '"allow":["ghost","reader"]');
    expect(await lazyRefusal(await reseal(withRule(parts, 0, ghost)))).toMatch(
      /^policy_unavailable: rule 0 .*unknown target 'ghost'/,
    );
    expect(await lazyRefusal(await reseal(withRule(parts, 0, infra.replace('{"allow"', '{ "allow"'))))).toMatch(
      /rule 0 .*not in canonical form/,
    );
    const shifted = structuredClone(parts.index);
    shifted.starts[1]! += 1;
    expect(
      await lazyRefusal(await reseal({ ...parts, index: shifted }), {
        namespace_path: "platform",
        pipeline_source: "push",
      }),
    ).toMatch(/rule 1 .*does not place it in the body/);
  });

  it("fails closed when the index names a rule it does not have, a rule of another issuer, or holds a bucket that is not a list", async () => {
    const parts = await storedParts();
    const edited = async (change: (index: StoredIndex) => void) => {
      const index = structuredClone(parts.index);
      change(index);
      return reseal({ ...parts, index });
    };
    expect(
      await lazyRefusal(
        await edited((index) => (corp(index).exact.project_path!["platform/infra"] = [99])),
        INFRA_MAIN,
        "deployer",
      ),
    ).toMatch(/index names rule 99, which it does not have/);
    expect(
      await lazyRefusal(
        await edited((index) => (corp(index).exact.project_path!["platform/infra"] = 0 as unknown as number[])),
        INFRA_MAIN,
        "deployer",
      ),
    ).toMatch(/bucket that is not a list/);
    const text = await edited((index) => (index.by_issuer["other-gitlab"] = corp(index)));
    const policy = await loadSnapshot(text);
    expect(() => evaluate(policy, identity(INFRA_MAIN, "other-gitlab"), "reader")).toThrow(/policy_unavailable/);
    expect(policy.refusal).toMatch(/files rule \d under issuer 'other-gitlab', not its own/);
    // The rest of the policy keeps working, and push's check refuses the whole snapshot.
    expect(evaluate(policy, identity({ namespace_path: "platform", pipeline_source: "push" }), "reader")).toMatchObject(
      { allowed: true, rule: "platform-reads" },
    );
    expect(await refusal(text, verifySnapshot)).toMatch(/its index is not the one its rules give/);
  });

  it("evaluates every rule the index finds in full, so a rule filed under another project's key allows nothing there", async () => {
    const parts = await storedParts();
    const index = structuredClone(parts.index);
    corp(index).exact.project_path = { "platform/other": [0] };
    const text = await reseal({ ...parts, index });
    const policy = await loadSnapshot(text);
    expect(evaluate(policy, identity({ ...INFRA_MAIN, project_path: "platform/other" }), "deployer")).toEqual({
      allowed: false,
      target: "deployer",
    });
    expect(await refusal(text, verifySnapshot)).toMatch(/its index is not the one its rules give/);
  });

  it("verifySnapshot also refuses what only a whole-policy check finds: duplicate names, an index not built from the rules", async () => {
    const parts = await storedParts();
    const texts = ruleTexts(parts);
    const duplicate = withRule(parts, 1, texts[1]!.replace('"name":"platform-reads"', '"name":"infra-main"'));
    const text = await reseal(duplicate);
    await loadSnapshot(text); // a cold isolate does not read every rule
    expect(await refusal(text, verifySnapshot)).toMatch(/duplicate rule name 'infra-main'/);
    const scanned = structuredClone(parts.index);
    corp(scanned).exact = {};
    corp(scanned).scanned = [0]; // looked at for every token: correct, but not what push builds
    const unbuilt = await reseal({ ...parts, index: scanned });
    expect(evaluate(await loadSnapshot(unbuilt), identity(), "deployer")).toMatchObject({ allowed: true });
    expect(await refusal(unbuilt, verifySnapshot)).toMatch(/its index is not the one its rules give/);
  });
});

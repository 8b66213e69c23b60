// Policy checks that keep one target from standing in for another, and keep policy text meaning what it
// says: unique minted subs, max_lifetime only where gatepass bounds the credential, Google ID tokens only
// for listed audiences, and YAML numbers/booleans that read back exactly as written.
import { describe, expect, it } from "vitest";
import { loadSnapshot } from "../../../src/policy/load-snapshot";
import { normalizePolicy, policyJsonSchema } from "../../../src/policy/policy-schema";
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import { checkPolicySources } from "../../../src/policy/policy-source";
import type { Target } from "../../../src/types";
import { checkedPolicyOf, CREATED_AT, DIGEST, problemsOf, RULES_YAML, sources, TARGETS_YAML } from "./fixtures";

/** The fixture targets plus `extra` (YAML list items, indented as in TARGETS_YAML). */
const withTargets = (extra: string) => `${TARGETS_YAML}${extra}`;

const WIP = "projects/1/locations/global/workloadIdentityPools/pool/providers/prov";
const SA = "deployer@infra-prod.iam.gserviceaccount.com";

describe("minted subs are unique across targets", () => {
  it("refuses an oidc target that mints the sub of a privileged aws target (the reported attack)", () => {
    const targets = withTargets(`  - name: aws-prod
    type: aws
    privileged: true
    role_arn: arn:aws:iam::123456789012:role/prod
  - name: tooling
    type: oidc
    audience: sts.amazonaws.com
    subject: "target:aws-prod"
`);
    expect(problemsOf({ targets })).toEqual([
      "targets.yaml:19: target 'tooling' would be minted with sub 'target:aws-prod', the same as target 'aws-prod' (first defined in targets.yaml): " +
        "each cloud role trusts exactly one target by its sub, so a job allowed 'tooling' could obtain 'aws-prod''s credential; give one of them a different subject",
    ]);
  });

  it("compares effective subs: explicit against default, explicit against explicit, across files, ignoring case", () => {
    // An explicit subject equal to another target's default, defined in another file (read first, as files
    // go by name): the later definition is reported and points at the first file.
    const rules = `${RULES_YAML}targets:\n  - { name: shadow, type: oidc, audience: x, subject: "target:reader" }\n`;
    expect(problemsOf({ rules })).toEqual([
      expect.stringMatching(
        /^targets\.yaml:6: target 'reader' would be minted with sub 'target:reader', the same as target 'shadow' \(first defined in rules\.yaml\): each cloud role trusts exactly one target by its sub/,
      ),
    ]);
    // Two explicit subjects.
    const both = withTargets(
      "  - { name: a, type: oidc, audience: x, subject: deploy }\n  - { name: b, type: oidc, audience: y, subject: deploy }\n",
    );
    expect(problemsOf({ targets: both })).toEqual([
      expect.stringMatching(/^targets\.yaml:13: target 'b' would be minted with sub 'deploy', the same as target 'a' /),
    ]);
    // A target named like another's explicit subject: the later default sub collides, reported at its name.
    const named = `targets:\n  - { name: a, type: oidc, audience: x, subject: "target:b" }\n  - { name: b, type: oidc, audience: y }\n`;
    expect(problemsOf({ targets: named, rules: "rules: []\n" })).toEqual([
      expect.stringMatching(
        /^targets\.yaml:3: target 'b' would be minted with sub 'target:b', the same as target 'a' /,
      ),
    ]);
    // Case-insensitive trust conditions (StringEqualsIgnoreCase) must not join two targets either.
    const cased = withTargets('  - { name: shadow, type: oidc, audience: x, subject: "TARGET:Reader" }\n');
    expect(problemsOf({ targets: cased })).toEqual([
      expect.stringMatching(
        /^targets\.yaml:12: target 'shadow' would be minted with sub 'TARGET:Reader', the same \(ignoring case\) as target 'reader' /,
      ),
    ]);
  });

  it("accepts distinct subs, including a subject equal to the target's own default", () => {
    const targets = withTargets(
      '  - { name: a, type: oidc, audience: x, subject: "target:a" }\n  - { name: b, type: oidc, audience: x, subject: "ci:b" }\n',
    );
    expect(checkedPolicyOf({ targets }).targets.map((t) => t.subject ?? `target:${t.name}`)).toEqual([
      "target:deployer",
      "target:reader",
      "target:registry",
      "target:a",
      "ci:b",
    ]);
  });

  it("refuses a stored snapshot whose targets share a sub, so the Worker fails closed", async () => {
    const policy = checkedPolicyOf();
    const tooling: Target = {
      name: "tooling",
      type: "oidc",
      privileged: false,
      signing_alg: "ES256",
      max_lifetime_seconds: 3600,
      audience: "sts.amazonaws.com",
      subject: "target:reader",
    };
    const parts = { ...policy, targets: [...policy.targets, tooling] };
    expect(normalizePolicy([{ name: "snapshot", value: parts }], "snapshot").problems).toEqual([
      expect.objectContaining({
        document: "snapshot",
        path: ["targets", 3, "subject"],
        message: expect.stringMatching(
          /^target 'tooling' would be minted with sub 'target:reader', the same as target 'reader'/,
        ),
      }),
    ]);
    const { text } = await buildSnapshot(parts, { sourceDigest: DIGEST, createdAt: CREATED_AT });
    await expect(loadSnapshot(text)).rejects.toMatchObject({
      code: "policy_invalid",
      description: expect.stringMatching(/each cloud role trusts exactly one target by its sub/),
    });
  });
});

describe("max_lifetime only where gatepass bounds the credential", () => {
  const gcp = (extra: string) =>
    withTargets(`  - name: gcp-extra\n    type: gcp\n    workload_identity_provider: ${WIP}\n${extra}`);
  const azure = (extra: string) =>
    withTargets(
      `  - name: azure-deployer\n    type: azure\n    tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n    client_id: 0b2a7a33-5a5d-4a2a-9d3e-1f2c3b4a5d6e\n${extra}`,
    );

  it("refuses max_lifetime on azure targets: Entra ID decides", () => {
    expect(problemsOf({ targets: azure("    max_lifetime: 15m\n") })).toEqual([
      "targets.yaml:16: max_lifetime cannot be enforced for azure targets: Entra ID decides the access token's lifetime (60-90 minutes by default) " +
        "and gatepass cannot shorten it. Remove max_lifetime; to change the lifetime, assign an Entra ID token lifetime policy",
    ]);
    // Whatever the value: fixing it would not help.
    expect(problemsOf({ targets: azure("    max_lifetime: 99h\n") })).toEqual([
      expect.stringMatching(/^targets\.yaml:16: max_lifetime cannot be enforced for azure targets/),
    ]);
  });

  it("refuses max_lifetime on gcp targets without service_account: Google STS decides", () => {
    expect(problemsOf({ targets: gcp("    max_lifetime: 10m\n") })).toEqual([
      "targets.yaml:15: max_lifetime is not enforced without service_account: Google STS decides the federated token's lifetime and gatepass " +
        "cannot shorten it. Add service_account to bound the credential (its access token lifetime is then at most max_lifetime), or remove max_lifetime",
    ]);
    // Even the default value, written out: the key itself promises a bound that does not exist.
    expect(problemsOf({ targets: gcp("    max_lifetime: 1h\n") })).toEqual([
      expect.stringMatching(/^targets\.yaml:15: max_lifetime is not enforced without service_account/),
    ]);
  });

  it("keeps max_lifetime on gcp targets with a service account, and on aws, vault and oidc", () => {
    const targets = `${gcp(`    service_account: ${SA}\n    max_lifetime: 10m\n`)}  - { name: v, type: vault, address: "https://vault.example.com", role: ci, audience: v, max_lifetime: 20m }\n`;
    const stored = checkedPolicyOf({ targets }).targets;
    expect(stored.find((t) => t.name === "gcp-extra")!.max_lifetime_seconds).toBe(600);
    expect(stored.find((t) => t.name === "v")!.max_lifetime_seconds).toBe(1200);
  });

  it("still loads azure and federated gcp targets without the key, with the stored default for the minted assertion", () => {
    const stored = checkedPolicyOf({ targets: azure("") }).targets;
    expect(stored.find((t) => t.name === "azure-deployer")!.max_lifetime_seconds).toBe(3600);
    expect(stored.find((t) => t.name === "deployer")!.max_lifetime_seconds).toBe(3600); // gcp without service_account
  });

  it("accepts stored snapshots, which always carry max_lifetime_seconds", () => {
    const policy = checkedPolicyOf({ targets: azure("") });
    const targets = policy.targets.map((t) =>
      t.type === "azure" || t.type === "gcp" ? { ...t, max_lifetime_seconds: 600 } : t,
    );
    expect(normalizePolicy([{ name: "snapshot", value: { ...policy, targets } }], "snapshot").problems).toEqual([]);
  });

  it("tells editors the same through the JSON Schema", () => {
    const variants = (policyJsonSchema().properties as Record<string, { items: { oneOf: Record<string, unknown>[] } }>)
      .targets!.items.oneOf;
    const of = (type: string) =>
      variants.find((v) => (v.properties as Record<string, { enum?: string[] }>).type!.enum![0] === type)!;
    expect(of("azure").allOf).toContainEqual({ not: { required: ["max_lifetime"] } });
    expect(of("gcp").allOf).toContainEqual({ dependentRequired: { max_lifetime: ["service_account"] } });
    expect(of("aws").allOf).toBeUndefined();
  });
});

describe("gcp id_token_audiences", () => {
  const gcp = (extra: string, sa = true) =>
    withTargets(
      `  - name: gcp-run\n    type: gcp\n    workload_identity_provider: ${WIP}\n${sa ? `    service_account: ${SA}\n` : ""}${extra}`,
    );

  it("is absent by default (no ID tokens) and stored as written", () => {
    expect(checkedPolicyOf({ targets: gcp("") }).targets.find((t) => t.name === "gcp-run")).not.toHaveProperty(
      "id_token_audiences",
    );
    const listed = checkedPolicyOf({
      targets: gcp("    id_token_audiences: [https://run.example.app, 32555940559.apps.googleusercontent.com]\n"),
    });
    expect(listed.targets.find((t) => t.name === "gcp-run")).toMatchObject({
      id_token_audiences: ["https://run.example.app", "32555940559.apps.googleusercontent.com"],
    });
  });

  it("refuses spaces, globs, duplicates, empty lists and more than 20 audiences", () => {
    expect(problemsOf({ targets: gcp('    id_token_audiences: ["https://a b"]\n') })).toEqual([
      "targets.yaml:16: 'https://a b' is not an exact audience without spaces or '*' (no globs)",
    ]);
    expect(problemsOf({ targets: gcp('    id_token_audiences: ["https://*.run.app"]\n') })).toEqual([
      expect.stringMatching(/^targets\.yaml:16: .* is not an exact audience without spaces or '\*'/),
    ]);
    expect(problemsOf({ targets: gcp("    id_token_audiences: [https://a, https://a]\n") })).toEqual([
      'targets.yaml:16: "https://a" is listed twice',
    ]);
    expect(problemsOf({ targets: gcp("    id_token_audiences: []\n") })).toEqual([
      "targets.yaml:16: must not be empty",
    ]);
    const many = (n: number) =>
      `    id_token_audiences: [${Array.from({ length: n }, (_, i) => `https://a${i}`).join(", ")}]\n`;
    expect(checkedPolicyOf({ targets: gcp(many(20)) }).targets.find((t) => t.name === "gcp-run")).toMatchObject({
      id_token_audiences: expect.any(Array),
    });
    expect(problemsOf({ targets: gcp(many(21)) })).toEqual(["targets.yaml:16: may have at most 20 entries"]);
  });

  it("refuses id_token_audiences without a service account, in sources and snapshots", () => {
    expect(problemsOf({ targets: gcp("    id_token_audiences: [https://run.example.app]\n", false) })).toEqual([
      "targets.yaml:15: Google ID tokens are issued for a service account: add service_account, or remove id_token_audiences",
    ]);
    const policy = checkedPolicyOf();
    const targets = policy.targets.map((t) =>
      t.name === "deployer" ? { ...t, id_token_audiences: ["https://run.example.app"] } : t,
    );
    expect(normalizePolicy([{ name: "snapshot", value: { ...policy, targets } }], "snapshot").problems).toEqual([
      {
        document: "snapshot",
        path: ["targets", 0, "id_token_audiences"],
        atKey: true,
        message: "Google ID tokens are issued for a service account: add service_account, or remove id_token_audiences",
      },
    ]);
  });

  it("round-trips through a stored snapshot", async () => {
    const { text } = await buildSnapshot(
      checkedPolicyOf({ targets: gcp("    id_token_audiences: [https://run.example.app]\n") }),
      { sourceDigest: DIGEST, createdAt: CREATED_AT },
    );
    expect((await loadSnapshot(text)).targets.get("gcp-run")).toMatchObject({
      id_token_audiences: ["https://run.example.app"],
    });
  });
});

describe("YAML numbers and booleans read back exactly as written", () => {
  const rule = (match: string) =>
    `rules:\n  - name: r\n    issuer: corp-gitlab\n    match: { ${match} }\n    allow: [reader]\n`;

  it("refuses a hexadecimal project_id instead of storing '16'", () => {
    expect(problemsOf({ rules: rule("project_id: 0x10") })).toEqual([
      'rules.yaml:4: the number 0x10 would be read as 16: write it in plain decimal (16), or quote it ("0x10") if it is text',
    ]);
  });

  it("refuses exponents, leading zeros and signs in condition lists, each at its own position", () => {
    const checked = checkPolicySources(
      sources({ rules: rule("project_path: a/b, ref_type: branch, ref: [1e3, 010, +5]") }),
    );
    expect(checked.policy).toBeUndefined();
    expect(checked.findings.map((f) => `${f.line}:${f.column}: ${f.message}`)).toEqual([
      '4:57: the number 1e3 would be read as 1000: write it in plain decimal (1000), or quote it ("1e3") if it is text',
      '4:62: the number 010 would be read as 10: write it in plain decimal (10), or quote it ("010") if it is text',
      '4:67: the number +5 would be read as 5: write it in plain decimal (5), or quote it ("+5") if it is text',
    ]);
  });

  it("refuses octal, floats written as integers, infinities, digits beyond exact precision, and keys", () => {
    expect(problemsOf({ rules: rule("project_id: 0o17") })).toEqual([
      expect.stringMatching(/the number 0o17 would be read as 15/),
    ]);
    expect(problemsOf({ rules: rule("project_id: 1.0") })).toEqual([
      expect.stringMatching(/the number 1\.0 would be read as 1: write it in plain decimal \(1\)/),
    ]);
    expect(problemsOf({ rules: rule("project_id: .inf") })).toEqual([
      expect.stringMatching(/the number \.inf would be read as Infinity: write it in plain decimal, or quote it/),
    ]);
    expect(problemsOf({ rules: rule("project_id: 12345678901234567890") })).toEqual([
      'rules.yaml:4: the number 12345678901234567890 is too large to be read exactly (it would be read as 12345678901234567000): quote it ("12345678901234567890")',
    ]);
    expect(
      problemsOf({ targets: withTargets(`  - name: x\n    type: oidc\n    audience: x\n    max_lifetime: 0x258\n`) }),
    ).toEqual([expect.stringMatching(/^targets\.yaml:15: the number 0x258 would be read as 600/)]);
    expect(problemsOf({ rules: `${RULES_YAML}0x10: x\n` })).toEqual([
      expect.stringMatching(/^rules\.yaml:19: the number 0x10 would be read as 16/),
    ]);
  });

  it("refuses other spellings of true and false, including YAML 1.1's yes/on", () => {
    expect(problemsOf({ rules: rule("project_path: a/b, ref_protected: True") })).toEqual([
      'rules.yaml:4: the boolean True would be read as true: write true, or quote it ("True") if it is text',
    ]);
    expect(problemsOf({ rules: `%YAML 1.1\n---\n${rule("project_path: a/b, ref_protected: yes")}` })).toEqual([
      expect.stringMatching(/^rules\.yaml:6: the boolean yes would be read as true: write true, or quote it \("yes"\)/),
    ]);
  });

  it("accepts plain decimal and quoted text, storing exactly what was written", () => {
    const policy = checkedPolicyOf({
      rules: rule('project_id: [42, "0x10", "010"], ref_protected: true, ref_type: branch, ref: ["1e3", "+5", "007"]'),
    });
    expect(policy.rules[0]!.match).toEqual({
      project_id: ["42", "0x10", "010"],
      ref_protected: "true",
      ref_type: "branch",
      ref: ["1e3", "+5", "007"],
    });
    expect(
      checkedPolicyOf({
        targets: withTargets("  - { name: x, type: oidc, audience: x, max_lifetime: 600 }\n"),
      }).targets.at(-1)!.max_lifetime_seconds,
    ).toBe(600);
  });
});

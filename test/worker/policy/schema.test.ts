import { describe, expect, it } from "vitest";
import { MAX_CONDITION_ALTERNATIVES, MAX_RULES } from "../../../src/limits";
import { normalizePolicy } from "../../../src/policy/policy-schema";
import { checkPolicySources, formatFinding } from "../../../src/policy/policy-source";
import { checkedPolicyOf, ISSUERS_YAML, problemsOf, RULES_YAML, sources, TARGETS_YAML } from "./fixtures";

describe("strict parsing with file and line", () => {
  it("accepts the fixture policy, whose only finding is the warning on its path-scoped deploy rule", () => {
    const checked = checkPolicySources(sources());
    expect(checked.policy).toBeDefined();
    expect(checked.findings.map((f) => `${f.file}:${f.line}: ${f.severity} ${f.code}`)).toEqual([
      "rules.yaml:5: warning privileged-path-scope",
    ]);
  });

  it("refuses unknown keys, pointing at the key", () => {
    expect(
      problemsOf({ rules: RULES_YAML.replace("    allow: [reader]\n", "    allow: [reader]\n    alow: [deployer]\n") }),
    ).toEqual([expect.stringMatching(/^rules\.yaml:15: unknown key 'alow'/)]);
    expect(problemsOf({ targets: `${TARGETS_YAML}    regoin: eu-west-1\n` })).toEqual([
      expect.stringMatching(/^targets\.yaml:\d+: unknown key 'regoin'/),
    ]);
    expect(problemsOf({ issuers: `${ISSUERS_YAML}extra: 1\n` })).toEqual([
      expect.stringMatching(/^issuers\.yaml:8: unknown key 'extra'/),
    ]);
  });

  it("refuses unknown targets and issuers in rules", () => {
    const rules =
      "rules:\n  - name: r\n    issuer: nobody\n    match: { project_path: a/b }\n    allow: [reader, ghost]\n";
    expect(problemsOf({ rules })).toEqual([
      expect.stringMatching(/^rules\.yaml:3: unknown issuer 'nobody'/),
      expect.stringMatching(/^rules\.yaml:5: unknown target 'ghost'/),
    ]);
  });

  it("refuses duplicate names across files and duplicate keys within a file", () => {
    const targets = `${TARGETS_YAML}  - name: reader\n    type: oidc\n    audience: x\n`;
    expect(problemsOf({ targets })).toEqual([
      expect.stringMatching(/^targets\.yaml:12: duplicate target name 'reader' \(first defined in targets\.yaml\)/),
    ]);
    const rules = `${RULES_YAML}  - name: groups\n    issuer: corp-gitlab\n    match: { project_path: a/b }\n    allow: [reader]\n`;
    expect(problemsOf({ rules })).toEqual([expect.stringMatching(/^rules\.yaml:19: duplicate rule name 'groups'/)]);
    expect(problemsOf({ rules: "rules:\n  - name: a\n    name: b\n" })).toEqual([
      expect.stringMatching(/^rules\.yaml:3: .*[Uu]nique/),
    ]);
  });

  it("refuses issuers whose URLs collide, and claims GitLab does not send", () => {
    const issuers = `${ISSUERS_YAML}  - name: again\n    url: HTTPS://GitLab.Example.com/\n    audiences: [x]\n`;
    expect(problemsOf({ issuers })).toEqual([
      expect.stringMatching(
        /^issuers\.yaml:9: issuer URL 'https:\/\/gitlab\.example\.com' is already used by issuer 'corp-gitlab'/,
      ),
    ]);
    const rules = RULES_YAML.replace("ref_type: branch", "ref_typ: branch");
    expect(problemsOf({ rules })).toContainEqual(
      expect.stringMatching(/^rules\.yaml:6: 'ref_typ' is not a GitLab CI token claim/),
    );
    // GitLab sends user_identities, but as a list of objects, which verification drops.
    const identities = RULES_YAML.replace("ref_type: branch", "user_identities: saml");
    expect(problemsOf({ rules: identities })).toContainEqual(
      expect.stringMatching(/^rules\.yaml:6: 'user_identities' is a list of objects.*never matches/),
    );
  });

  it("reports every bad value with its line and a sentence saying what to write", () => {
    const targets = `targets:
  - name: Bad Name
    type: oidc
    audience: x
  - name: gcp
    type: gcp
    workload_identity_provider: projects/x/pools
  - name: aws
    type: aws
    role_arn: arn:aws:iam::123456789012:role/r
    max_lifetime: 5m
  - name: kind
    type: ftp
  - name: vault
    type: vault
    address: https://vault.example.com
    mount: auth/../sys
    role: ci
    audience: vault
`;
    expect(problemsOf({ targets, rules: "rules: []\n" })).toEqual([
      expect.stringMatching(/^targets\.yaml:2: 'Bad Name' is not a name of lower-case letters/),
      expect.stringMatching(/^targets\.yaml:7: 'projects\/x\/pools' is not projects\/NUMBER\/locations/),
      expect.stringMatching(/^targets\.yaml:11: must be between 900 and 43200/),
      expect.stringMatching(/^targets\.yaml:13: 'type' must be one of gcp, aws, azure, vault, oidc/),
      // The provider builds /v1/auth/<mount>/login from it: a `..` segment would climb out of /v1/auth/.
      expect.stringMatching(/^targets\.yaml:17: 'auth\/\.\.\/sys' is not a mount path such as jwt/),
    ]);
  });

  it("refuses malformed patterns, empty lists and odd condition shapes", () => {
    const rules = `rules:
  - name: r
    issuer: corp-gitlab
    match:
      project_path: "a/b**"
      ref: []
      ref_type: { nope: branch }
      namespace_path: { a: 1 }
    allow: [reader]
`;
    expect(problemsOf({ rules })).toEqual([
      expect.stringMatching(/^rules\.yaml:5: '\*\*' must be a whole path segment/),
      expect.stringMatching(/^rules\.yaml:6: an empty list matches nothing/),
      expect.stringMatching(/^rules\.yaml:7: a condition mapping must be exactly \{ not: value-or-list \}/),
      expect.stringMatching(/^rules\.yaml:8: a condition mapping must be exactly/),
    ]);
  });

  it("prints every finding on one line, escaping what the YAML parser quotes from the file", () => {
    const { findings } = checkPolicySources(sources({ rules: "%FOO\u001b[2J\nrules: []\n" }));
    expect(findings.length).toBeGreaterThan(0);
    for (const line of findings.map(formatFinding)) {
      expect(line).not.toMatch(/[\u0000-\u001f]/);
      expect(line).toMatch(/^rules\.yaml:\d+:\d+: error: /);
    }
    expect(findings.map(formatFinding).join("\n")).toContain("\\u001b[2J");
  });

  it("reports a non-mapping file with its line", () => {
    expect(problemsOf({ rules: "- just a list\n" })).toEqual([
      expect.stringMatching(/^rules\.yaml:1: a policy file is a mapping/),
    ]);
  });

  it("caps alias expansion (billion laughs)", () => {
    const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
`;
    expect(problemsOf({ rules: bomb })[0]).toMatch(/^rules\.yaml:1: .*[Aa]lias/);
  });
});

describe("YAML syntax errors: one file:line:column finding per file, where the fix goes, then the parser's words", () => {
  /** The findings of a rules.yaml text, as printed. */
  const syntax = (rules: string) => checkPolicySources(sources({ rules })).findings.map(formatFinding);
  const RULE = "rules:\n  - name: r\n    issuer: corp-gitlab\n";

  it("reports an unclosed [ or { at the bracket, not where the parser gives up lines later", () => {
    expect(syntax(`${RULE}    allow: [reader\n    match: { project_id: "1" }\n    description: x\n`)).toEqual([
      "rules.yaml:4:12: error: this '[' is never closed with ']' (YAML: Flow sequence in block collection must be sufficiently indented and end with a ])",
    ]);
    expect(syntax(`${RULE}    match: { project_id: "1"\n    allow: [reader]\n`)).toEqual([
      expect.stringMatching(/^rules\.yaml:4:12: error: this '\{' is never closed with '\}' \(YAML: /),
    ]);
    expect(syntax(`${RULE}    match: { ref: [main, dev } }\n`)).toEqual([
      expect.stringMatching(/^rules\.yaml:4:19: error: this '\[' is closed with '\}', not '\]' \(YAML: /),
    ]);
  });

  it("reports an unclosed quote at the quote", () => {
    expect(syntax(`${RULE}    description: "the main branch\n    allow: [reader]\n`)).toEqual([
      expect.stringMatching(/^rules\.yaml:4:18: error: this " quote is never closed \(YAML: Missing closing "quote\)$/),
    ]);
    // Escaped quotes inside are not the end; a closed string is no error.
    expect(syntax(`${RULE}    description: 'it''s\n    allow: [reader]\n`)).toEqual([
      expect.stringMatching(/^rules\.yaml:4:18: error: this ' quote is never closed/),
    ]);
    expect(syntax(`${RULE}    description: 'it''s'\n    match: { project_path: a/b }\n    allow: [reader]\n`)).toEqual(
      [],
    );
  });

  it("reports a bad indent at the line's first character", () => {
    // Less indented than its siblings.
    expect(syntax(`${RULE}    match:\n      ref_type: branch\n     ref: main\n    allow: [reader]\n`)).toEqual([
      "rules.yaml:6:6: error: this line is not indented like the lines it belongs with (YAML: All mapping items must start at the same column)",
    ]);
    expect(syntax(`${RULE}   allow: [reader]\n`)).toEqual([
      expect.stringMatching(
        /^rules\.yaml:4:4: error: this line is not indented like the lines it belongs with \(YAML: /,
      ),
    ]);
    expect(syntax(`${RULE}    match: { project_path: a/b }\n      allow: [reader]\n`)).toEqual([
      "rules.yaml:5:7: error: this line is not indented like the lines it belongs with (YAML: All mapping items must start at the same column)",
    ]);
    // More indented than the key above: the parser points at the value above it.
    expect(syntax(`${RULE}    allow: [reader]\n    description: x\n      match: { project_path: a/b }\n`)).toEqual([
      "rules.yaml:6:7: error: this line is indented deeper than the key above it (YAML: Nested mappings are not allowed in compact mappings)",
    ]);
    expect(syntax("rules:\n\t- name: r\n")).toEqual([
      expect.stringMatching(/^rules\.yaml:2:1: error: indent with spaces, not tabs \(YAML: /),
    ]);
  });

  it("reports a duplicate key at the second one", () => {
    expect(syntax(`${RULE}    match: { project_path: a/b }\n    allow: [reader]\n    name: s\n`)).toEqual([
      "rules.yaml:6:5: error: this key is already in the same mapping: keys must be unique (YAML: Map keys must be unique)",
    ]);
  });

  it("reports one finding per file, the first problem in it", () => {
    const findings = checkPolicySources([
      { name: "a.yaml", text: 'rules:\n  - name: [x\n    issuer: y\n  - name: "z\n' },
      { name: "b.yaml", text: "rules:\n  - name: a\n    name: b\n    name: c\n" },
    ]).findings.map(formatFinding);
    expect(findings).toEqual([
      expect.stringMatching(/^a\.yaml:2:11: error: this '\[' is never closed/),
      expect.stringMatching(/^b\.yaml:3:5: error: this key is already/),
    ]);
  });
});

describe("defaults and canonical forms", () => {
  it("fills issuer defaults and canonicalises URLs and aliases", () => {
    const issuers = `issuers:
  - name: corp-gitlab
    url: GitLab.Example.com/gitlab/
    aliases: [gitlab.example.com/gitlab]
    audiences: [a]
  - name: other-gitlab
    url: https://gitlab.other.example
    audiences: [a]
    keys: { source: jwks_uri, jwks_uri: https://keys.other.example/jwks.json }
    max_token_age: 15m
`;
    // The alias equals the canonical URL here, which is a collision.
    expect(problemsOf({ issuers })).toEqual([
      expect.stringMatching(/^issuers\.yaml:4: issuer URL 'https:\/\/gitlab\.example\.com\/gitlab' is already used/),
    ]);
    const policy = checkedPolicyOf({
      issuers: issuers.replace("aliases: [gitlab.example.com/gitlab]", "aliases: [gitlab.example.com]"),
    });
    expect(policy.issuers[0]).toEqual({
      name: "corp-gitlab",
      url: "https://gitlab.example.com/gitlab",
      kind: "gitlab",
      aliases: ["https://gitlab.example.com"],
      audiences: ["a"],
      algorithms: ["RS256"],
      keys: { source: "discovery" },
      max_token_age_seconds: 3600,
      accept_legacy_ci_job_jwt: false,
      single_audience: true,
    });
    expect(policy.issuers[1]).toMatchObject({
      keys: { source: "jwks_uri", jwks_uri: "https://keys.other.example/jwks.json" },
      max_token_age_seconds: 900,
    });
  });

  it("allows http only for loopback issuers, and refuses pushed-key issuers with a jwks_uri", () => {
    const issuer = (url: string, keys = "{ source: pushed }") =>
      `issuers:\n  - { name: corp-gitlab, url: "${url}", audiences: [a], keys: ${keys} }\n  - { name: other-gitlab, url: https://o.example, audiences: [a] }\n`;
    expect(checkedPolicyOf({ issuers: issuer("http://127.0.0.1:8788") }).issuers[0]).toMatchObject({
      url: "http://127.0.0.1:8788",
      keys: { source: "pushed" },
    });
    expect(problemsOf({ issuers: issuer("http://gitlab.example.com") })).toEqual([
      expect.stringMatching(/^issuers\.yaml:2: use https:\/\//),
    ]);
    expect(problemsOf({ issuers: issuer("https://gitlab.example.com?x=1") })).toEqual([
      expect.stringMatching(/^issuers\.yaml:2: .* is not an issuer URL/),
    ]);
    expect(
      problemsOf({ issuers: issuer("https://g.example", "{ source: pushed, jwks_uri: https://k.example }") }),
    ).toEqual([expect.stringMatching(/^issuers\.yaml:2: unknown key 'jwks_uri'/)]);
  });

  it("accepts durations in seconds or with a unit and stores seconds", () => {
    const targets = (lifetime: string) =>
      TARGETS_YAML.replace(
        "    audience: https://registry.example.com\n",
        `    audience: https://registry.example.com\n    max_lifetime: ${lifetime}\n`,
      );
    const lifetime = (value: string) =>
      checkedPolicyOf({ targets: targets(value) }).targets.find((t) => t.name === "registry")!.max_lifetime_seconds;
    expect(lifetime("600")).toBe(600);
    expect(lifetime("15m")).toBe(900);
    expect(lifetime("1h")).toBe(3600);
    expect(problemsOf({ targets: targets("2h") })).toEqual([
      expect.stringMatching(/^targets\.yaml:\d+: must be between 60 and 3600/),
    ]);
    expect(problemsOf({ targets: targets("1.5h") })).toEqual([expect.stringMatching(/is not a duration/)]);
  });

  it("fills target defaults per type, including computed audiences", () => {
    const { targets } = checkedPolicyOf();
    expect(targets.find((t) => t.name === "deployer")).toEqual({
      name: "deployer",
      type: "gcp",
      privileged: true,
      signing_alg: "ES256",
      max_lifetime_seconds: 3600,
      workload_identity_provider: "projects/1/locations/global/workloadIdentityPools/pool/providers/prov",
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
      audience: "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/pool/providers/prov",
    });
    expect(targets.find((t) => t.name === "reader")).toMatchObject({
      region: "us-east-1",
      audience: "sts.amazonaws.com",
      privileged: false,
    });
  });

  it("signs azure targets with RS256 only: Entra ID refuses an ES256 assertion", () => {
    const azure = (extra = "") =>
      `${TARGETS_YAML}  - name: azure-deployer\n    type: azure\n    tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n    client_id: 0b2a7a33-5a5d-4a2a-9d3e-1f2c3b4a5d6e\n${extra}`;
    const alg = (targets: string) =>
      checkedPolicyOf({ targets }).targets.find((t) => t.name === "azure-deployer")!.signing_alg;
    expect(alg(azure())).toBe("RS256");
    expect(alg(azure("    signing_alg: RS256\n"))).toBe("RS256");
    expect(problemsOf({ targets: azure("    signing_alg: ES256\n") })).toEqual([
      expect.stringMatching(
        /^targets\.yaml:\d+: expected RS256, got string "ES256": Entra ID accepts only RSA-signed client assertions$/,
      ),
    ]);
    // Other clouds verify ES256, gatepass's cheaper default.
    expect(checkedPolicyOf().targets.find((t) => t.name === "reader")!.signing_alg).toBe("ES256");
  });

  it("takes a Vault namespace path, and refuses one that is not a plain path", () => {
    const vault = (namespace: string) =>
      `${TARGETS_YAML}  - name: vault-ci\n    type: vault\n    address: https://vault.example.com\n    role: ci\n    audience: vault\n    namespace: "${namespace}"\n`;
    expect(
      checkedPolicyOf({ targets: vault("admin/team-a") }).targets.find((t) => t.name === "vault-ci"),
    ).toMatchObject({ namespace: "admin/team-a" });
    for (const bad of ["admin/", "/admin", "admin//a", "admin/../root", "a b", "admin\\r\\nX: 1"]) {
      expect(problemsOf({ targets: vault(bad) })).toEqual([
        expect.stringMatching(/^targets\.yaml:\d+: .* is not a Vault namespace path such as admin or admin\/team-a$/),
      ]);
    }
  });

  it("turns unquoted true and whole numbers in conditions into the strings claims carry", () => {
    const rules =
      "rules:\n  - name: r\n    issuer: corp-gitlab\n    match: { project_id: 42, ref_protected: true, ref_type: [branch], ref: main }\n    allow: [reader]\n";
    expect(checkedPolicyOf({ rules }).rules[0]!.match).toEqual({
      project_id: "42",
      ref_protected: "true",
      ref_type: ["branch"],
      ref: "main",
    });
    expect(problemsOf({ rules: rules.replace("42", "4.2") })).toEqual([
      expect.stringMatching(/expected a string \(claims are compared as strings\)/),
    ]);
  });

  it("requires match to be a mapping of claim: condition", () => {
    const rules = "rules:\n  - name: r\n    issuer: corp-gitlab\n    match: main\n    allow: [reader]\n";
    expect(problemsOf({ rules })).toEqual([
      expect.stringMatching(/^rules\.yaml:4: expected a mapping of claim: condition, got string "main"/),
    ]);
  });

  it("requires session policies to be JSON objects", () => {
    const targets = TARGETS_YAML.replace(
      "role/reader\n",
      'role/reader\n    session_policy: \'{"Version": "2012-10-17"\'\n',
    );
    expect(problemsOf({ targets })).toEqual([
      expect.stringMatching(/session_policy must be the text of a JSON object/),
    ]);
  });
});

describe("size caps", () => {
  it("refuses more rules than MAX_RULES, and condition lists longer than MAX_CONDITION_ALTERNATIVES", () => {
    const policy = checkedPolicyOf();
    const rule = (i: number) => ({
      name: `r${i}`,
      issuer: "corp-gitlab",
      match: { project_path: `a/${i}` },
      allow: ["reader"],
    });
    const documents = (count: number) => [
      {
        name: "snapshot",
        value: {
          issuers: policy.issuers,
          targets: policy.targets,
          rules: Array.from({ length: count }, (_, i) => rule(i)),
        },
      },
    ];
    expect(normalizePolicy(documents(MAX_RULES), "snapshot").problems).toEqual([]);
    expect(normalizePolicy(documents(MAX_RULES + 1), "snapshot").problems).toEqual([
      { document: "snapshot", path: ["rules", MAX_RULES], message: `at most ${MAX_RULES} rules are supported` },
    ]);
    const values = (n: number) => `[${Array.from({ length: n }, (_, i) => `v${i}`).join(", ")}]`;
    const rules = (n: number) =>
      `rules:\n  - { name: r, issuer: corp-gitlab, match: { project_path: a/b, ref_type: branch, ref: ${values(n)} }, allow: [reader] }\n`;
    expect(problemsOf({ rules: rules(MAX_CONDITION_ALTERNATIVES) })).toEqual([]);
    expect(problemsOf({ rules: rules(MAX_CONDITION_ALTERNATIVES + 1) })).toEqual([
      expect.stringMatching(/^rules\.yaml:2: may list at most 100 values/),
    ]);
  });
});

import { describe, expect, it } from "vitest";
import { checkPolicySources } from "../../../src/policy/policy-source";
import { ISSUERS_YAML, sources } from "./fixtures";

/** Lint findings for one rule (added to the fixture policy) as `line: severity code`. */
function lint(rule: string): string[] {
  const rules = `rules:\n  - name: r\n    issuer: corp-gitlab\n${rule.replace(/^/gm, "    ")}\n`;
  return checkPolicySources(sources({ rules })).findings.map((f) => `${f.line}: ${f.severity} ${f.code ?? f.message}`);
}

const SAFE = `ref_type: branch
ref: main
ref_protected: "true"
pipeline_source: [push, web, schedule]`;

const rule = (match: string, allow = "[deployer]", extra = "") =>
  `match:\n${match.replace(/^/gm, "  ")}\nallow: ${allow}${extra ? `\n${extra}` : ""}`;

describe("lint", () => {
  it("accepts a rule scoped by id and protected for a privileged target", () => {
    expect(lint(rule(`project_id: "101"\n${SAFE}`))).toEqual([]);
    expect(lint(rule(`project_id: 101\nproject_path: platform/infra\n${SAFE}`))).toEqual([]);
    expect(lint(rule(`namespace_id: ["10", "11"]\nref_protected: "true"\npipeline_source: [push, schedule]`))).toEqual(
      [],
    );
  });

  it("refuses rules without project or namespace scope, counting bare wildcards and negations as none", () => {
    for (const scope of [
      "",
      `project_path: "**"`,
      `project_path: "*/infra"`,
      `namespace_path: ["platform", "**"]`,
      `project_id: "1*"`,
      `project_path: { not: evil/x }`,
    ]) {
      expect(
        lint(rule(`${scope}\nref_type: branch`, "[reader]")).map((f) => f.replace(/^\d+: /, "")),
        scope,
      ).toEqual(["error no-scope"]);
    }
  });

  it("lets acknowledge.broad silence the scope refusal, and warns when it is not needed", () => {
    expect(lint(rule("ref_type: branch", "[reader]", "acknowledge: { broad: true }"))).toEqual([]);
    expect(lint(rule("project_path: a/b", "[reader]", "acknowledge: { broad: true }"))).toEqual([
      "7: warning unneeded-acknowledgement",
    ]);
  });

  it("refuses ref without an exact ref_type, with no acknowledgement to silence it", () => {
    expect(lint(rule("project_path: a/b\nref: main", "[reader]"))).toEqual(["6: error ref-without-ref-type"]);
    expect(lint(rule(`project_path: a/b\nref: main\nref_type: "*"`, "[reader]"))).toEqual([
      "6: error ref-without-ref-type",
    ]);
    expect(lint(rule("project_path: a/b\nref: main\nref_type: { not: tag }", "[reader]"))).toEqual([
      "6: error ref-without-ref-type",
    ]);
    expect(
      lint(rule("project_path: a/b\nref: main", "[reader]", "acknowledge: { broad: true, unprotected: true }")),
    ).toContain("6: error ref-without-ref-type");
  });

  it("refuses a ref_type list: a tag named main would match [branch, tag]", () => {
    expect(lint(rule("project_path: a/b\nref: main\nref_type: [branch, tag]", "[reader]"))).toEqual([
      "6: error ref-without-ref-type",
    ]);
    expect(lint(rule("project_path: a/b\nref: main\nref_type: [tag, branch]", "[reader]"))).toEqual([
      "6: error ref-without-ref-type",
    ]);
    const [finding] = checkPolicySources(
      sources({
        rules: `rules:\n  - { name: r, issuer: corp-gitlab, match: { project_path: a/b, ref: main, ref_type: [branch, tag] }, allow: [reader] }\n`,
      }),
    ).findings;
    expect(finding).toMatchObject({
      severity: "error",
      code: "ref-without-ref-type",
      message: expect.stringMatching(/one exact value \(a list such as \[branch, tag\] matches either\)/),
    });
    // A one-element list is a single exact value.
    expect(lint(rule("project_path: a/b\nref: main\nref_type: [branch]", "[reader]"))).toEqual([]);
  });

  it("refuses privileged targets reachable from unprotected refs", () => {
    const withoutProtection = `project_id: "7"\nref_type: branch\nref: main\npipeline_source: [push]`;
    expect(lint(rule(withoutProtection))).toEqual(["5: error privileged-unprotected-ref"]);
    expect(lint(rule(`${withoutProtection}\nref_protected: ["true", "false"]`))).toEqual([
      "5: error privileged-unprotected-ref",
    ]);
    expect(lint(rule(`${withoutProtection}\nref_protected: "*"`))).toEqual(["5: error privileged-unprotected-ref"]);
  });

  it("refuses privileged targets reachable from merge-request pipelines", () => {
    const base = `project_id: "7"\nref_type: branch\nref: main\nref_protected: "true"`;
    expect(lint(rule(base))).toEqual(["5: error privileged-merge-requests"]);
    expect(lint(rule(`${base}\npipeline_source: { not: merge_request_event }`))).toEqual([
      "5: error privileged-merge-requests",
    ]);
    expect(lint(rule(`${base}\npipeline_source: "*"`))).toEqual(["5: error privileged-merge-requests"]);
    expect(lint(rule(`${base}\npipeline_source: [push, merge_request_event]`))).toEqual([
      "5: error privileged-merge-requests",
    ]);
  });

  it("warns when privileged targets can be reached from child pipelines, which merge-request pipelines start too", () => {
    const base = `project_id: "7"\nref_type: branch\nref: main\nref_protected: "true"`;
    for (const source of ["{ not: [merge_request_event, external_pull_request_event] }", "[push, parent_pipeline]"]) {
      expect(lint(rule(`${base}\npipeline_source: ${source}`)), source).toEqual([
        "9: warning privileged-child-pipelines",
      ]);
    }
    // A warning: the policy still loads.
    const rules = `rules:\n  - name: r\n    issuer: corp-gitlab\n${rule(`${base}\npipeline_source: [push, parent_pipeline]`).replace(/^/gm, "    ")}\n`;
    expect(checkPolicySources(sources({ rules })).policy).toBeDefined();
    expect(
      lint(
        rule(
          `${base}\npipeline_source: [push, parent_pipeline]`,
          "[deployer]",
          "acknowledge: { child_pipelines: true }",
        ),
      ),
    ).toEqual([]);
    // acknowledge.unprotected is for the errors: it does not silence this warning.
    expect(
      lint(
        rule(
          `project_id: "7"\npipeline_source: [push, parent_pipeline]`,
          "[deployer]",
          "acknowledge: { unprotected: true }",
        ),
      ),
    ).toEqual(["6: warning privileged-child-pipelines"]);
  });

  it("warns when acknowledge.child_pipelines silences nothing, saying why", () => {
    const messages = (match: string, allow: string, ack: string) =>
      checkPolicySources(
        sources({
          rules: `rules:\n  - name: r\n    issuer: corp-gitlab\n${rule(match, allow, ack).replace(/^/gm, "    ")}\n`,
        }),
      )
        .findings.filter((f) => f.code === "unneeded-acknowledgement")
        .map((f) => f.message);
    const base = `project_path: a/b\nref_type: branch\nref: main\nref_protected: "true"`;
    expect(messages(`project_path: a/b\n${SAFE}`, "[deployer]", "acknowledge: { child_pipelines: true }")).toEqual([
      expect.stringMatching(/pipeline_source excludes child pipelines$/),
    ]);
    expect(messages("project_path: a/b", "[reader]", "acknowledge: { child_pipelines: true }")).toEqual([
      expect.stringMatching(/allows no privileged target$/),
    ]);
    expect(messages(base, "[deployer]", "acknowledge: { child_pipelines: true }")).toEqual([
      expect.stringMatching(/admits merge-request pipelines/),
    ]);
  });

  it("lets acknowledge.unprotected silence both privileged refusals, and warns when it is not needed", () => {
    expect(lint(rule(`project_id: "7"`, "[deployer]", "acknowledge: { unprotected: true }"))).toEqual([]);
    expect(lint(rule(`project_id: "7"\n${SAFE}`, "[deployer]", "acknowledge: { unprotected: true }"))).toEqual([
      "11: warning unneeded-acknowledgement",
    ]);
    expect(lint(rule("project_path: a/b", "[reader]", "acknowledge: { unprotected: true }"))).toEqual([
      "7: warning unneeded-acknowledgement",
    ]);
  });

  it("refuses privileged targets in rules of an issuer that accepts legacy CI_JOB_JWT (no aud), with no acknowledgement", () => {
    const legacyIssuers = ISSUERS_YAML.replace(
      "audiences: [https://gatepass.example.com]",
      "audiences: [https://gatepass.example.com]\n    accept_legacy_ci_job_jwt: true",
    );
    const findings = (allow: string, extra = "") =>
      checkPolicySources(
        sources({
          issuers: legacyIssuers,
          rules: `rules:\n  - name: r\n    issuer: corp-gitlab\n${rule(`project_id: "101"\n${SAFE}`, allow, extra).replace(/^/gm, "    ")}\n`,
        }),
      ).findings.map((f) => `${f.severity} ${f.code}`);
    expect(findings("[deployer]")).toEqual(["error privileged-legacy-tokens"]);
    expect(findings("[deployer]", "acknowledge: { unprotected: true }")).toContain("error privileged-legacy-tokens");
    expect(findings("[reader]")).toEqual([]);
  });

  it("warns when a privileged target is reached by path alone, at the path, suggesting project_id or namespace_id", () => {
    expect(lint(rule(`project_path: platform/infra\n${SAFE}`))).toEqual(["5: warning privileged-path-scope"]);
    expect(
      lint(rule(`ref_type: branch\nnamespace_path: "platform/**"\nref_protected: "true"\npipeline_source: [push]`)),
    ).toEqual(["6: warning privileged-path-scope"]);
    // A negated or wildcard id scopes nothing, so the path is still all that scopes the rule.
    expect(lint(rule(`project_id: { not: "7" }\nproject_path: platform/infra\n${SAFE}`))).toEqual([
      "6: warning privileged-path-scope",
    ]);
    expect(lint(rule(`namespace_id: "1*"\nnamespace_path: platform\n${SAFE}`))).toEqual([
      "6: warning privileged-path-scope",
    ]);
    const [finding] = checkPolicySources(
      sources({
        rules: `rules:\n  - name: r\n    issuer: corp-gitlab\n${rule(`project_path: platform/infra\n${SAFE}`).replace(/^/gm, "    ")}\n`,
      }),
    ).findings;
    expect(finding).toMatchObject({
      severity: "warning",
      code: "privileged-path-scope",
      message: expect.stringMatching(
        /^privileged target\(s\) deployer are reached by path alone \(project_path "platform\/infra"\), .*rename, transfer or deletion: match project_id \(or namespace_id.*policies explain.*acknowledge: \{ path_scope: true \}/,
      ),
    });
    // A warning: the policy still loads.
    expect(
      checkPolicySources(
        sources({
          rules: `rules:\n  - { name: r, issuer: corp-gitlab, match: { project_path: a/b, ref_type: branch, ref: main, ref_protected: "true", pipeline_source: push }, allow: [deployer] }\n`,
        }),
      ).policy,
    ).toBeDefined();
    // Ordinary targets may follow a path; privileged ones scoped by an id may name the path too.
    expect(lint(rule("project_path: platform/infra", "[reader]"))).toEqual([]);
    expect(lint(rule(`namespace_id: "10"\nproject_path: platform/infra\n${SAFE}`))).toEqual([]);
  });

  it("lets acknowledge.path_scope silence the path warning, and warns when it is not needed, saying why", () => {
    expect(
      lint(rule(`project_path: platform/infra\n${SAFE}`, "[deployer]", "acknowledge: { path_scope: true }")),
    ).toEqual([]);
    // acknowledge.unprotected does not silence it.
    expect(lint(rule("project_path: platform/infra", "[deployer]", "acknowledge: { unprotected: true }"))).toEqual([
      "5: warning privileged-path-scope",
    ]);
    const messages = (match: string, allow: string, ack: string) =>
      checkPolicySources(
        sources({
          rules: `rules:\n  - name: r\n    issuer: corp-gitlab\n${rule(match, allow, ack).replace(/^/gm, "    ")}\n`,
        }),
      )
        .findings.filter((f) => f.code === "unneeded-acknowledgement")
        .map((f) => f.message);
    expect(messages(`project_id: "101"\n${SAFE}`, "[deployer]", "acknowledge: { path_scope: true }")).toEqual([
      "acknowledge.path_scope is not needed: the rule is scoped by project_id or namespace_id",
    ]);
    expect(messages("project_path: platform/infra", "[reader]", "acknowledge: { path_scope: true }")).toEqual([
      "acknowledge.path_scope is not needed: the rule allows no privileged target",
    ]);
    expect(messages(SAFE, "[deployer]", "acknowledge: { broad: true, path_scope: true }")).toEqual([
      "acknowledge.path_scope is not needed: the rule has no path scope",
    ]);
  });

  it("does not apply the privileged checks to ordinary targets", () => {
    expect(lint(rule("project_path: a/b", "[reader, registry]"))).toEqual([]);
  });

  it("blocks the policy on errors but not on warnings", () => {
    const rules = (extra: string) =>
      `rules:\n  - { name: r, issuer: corp-gitlab, match: { project_path: a/b }, allow: [reader]${extra} }\n`;
    expect(checkPolicySources(sources({ rules: rules("") })).policy).toBeDefined();
    expect(checkPolicySources(sources({ rules: rules(", acknowledge: { broad: true }") })).policy).toBeDefined();
    expect(
      checkPolicySources(
        sources({ rules: rules(", acknowledge: { broad: true }").replace("project_path: a/b", "ref_type: tag") }),
      ).policy,
    ).toBeDefined();
    expect(
      checkPolicySources(sources({ rules: rules("").replace("project_path: a/b", "ref_type: tag") })).policy,
    ).toBeUndefined();
  });
});

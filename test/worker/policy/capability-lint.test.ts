// Rules granting gatepass's own capabilities: accepted in allow without a target definition, and held
// to protected refs, trusted events and id scope by errors that no acknowledgement silences.
import { describe, expect, it } from "vitest";
import { checkPolicySources } from "../../../src/policy/policy-source";
import { ISSUERS_YAML, sources } from "./fixtures";

const SAFE = `project_id: "101"\nref_protected: "true"\npipeline_source: [push, web]`;
const EVERY_ACK = "acknowledge: { broad: true, unprotected: true, child_pipelines: true, path_scope: true }";

/** Error codes (and messages for schema problems) for one rule added to the fixture policy. */
function errors(
  match: string,
  allow = "[gatepass:policies-push]",
  extra = "",
  issuers = ISSUERS_YAML,
  issuer = "corp-gitlab",
): string[] {
  const rule = `name: r\nissuer: ${issuer}\nmatch:\n${match.replace(/^/gm, "  ")}\nallow: ${allow}${extra ? `\n${extra}` : ""}`;
  const rules = `rules:\n${rule.replace(/^/gm, "    ").replace(/^ {4}/, "  - ")}\n`;
  return checkPolicySources(sources({ rules, issuers }))
    .findings.filter((f) => f.severity === "error")
    .map((f) => f.code ?? f.message);
}

describe("capabilities in policy", () => {
  it("accepts every capability in allow, next to targets, with no target definition", () => {
    const allow = "[gatepass:policies-push, gatepass:policies-plan, gatepass:audit-read, gatepass:status-read, reader]";
    expect(errors(SAFE, allow)).toEqual([]);
    const rules = `rules:\n  - { name: r, issuer: corp-gitlab, match: { project_id: "101", ref_protected: "true", pipeline_source: push }, allow: ${allow} }\n`;
    expect(checkPolicySources(sources({ rules })).policy?.rules[0]!.allow).toContain("gatepass:policies-push");
  });

  it("refuses a name under gatepass: that is not a capability, listing the capabilities", () => {
    expect(errors(SAFE, "[gatepass:everything]")).toEqual([
      expect.stringMatching(
        /'gatepass:everything' is not a gatepass capability; the capabilities are gatepass:policies-push, /,
      ),
    ]);
    expect(errors(SAFE, "[other:thing]")).toEqual([
      expect.stringMatching(/'other:thing' is not a name of lower-case letters.*, or a gatepass capability/),
    ]);
  });

  it("refuses a target defined with a capability's name (target names cannot contain ':')", () => {
    const targets = `targets:\n  - { name: "gatepass:policies-push", type: oidc, audience: https://x.example.com }\n`;
    const found = checkPolicySources(sources({ targets })).findings.map((f) => f.message);
    expect(found).toEqual(
      expect.arrayContaining([expect.stringMatching(/'gatepass:policies-push' is not a name of lower-case letters/)]),
    );
  });

  it("requires a protected ref, even with every acknowledgement", () => {
    const match = `project_id: "101"\npipeline_source: [push, web]`;
    expect(errors(match)).toEqual(["capability-unprotected-ref"]);
    expect(errors(match, undefined, EVERY_ACK)).toEqual(["capability-unprotected-ref"]);
    expect(errors(`${match}\nref_protected: ["true", "false"]`)).toEqual(["capability-unprotected-ref"]);
    expect(errors(`${match}\nref_protected: "*"`)).toEqual(["capability-unprotected-ref"]);
  });

  it("refuses merge-request, fork and external pull-request events, and a rule that does not name its events, even acknowledged", () => {
    const base = `project_id: "101"\nref_protected: "true"`;
    expect(errors(base)).toEqual(["capability-untrusted-events"]);
    expect(errors(`${base}\npipeline_source: [push, merge_request_event]`)).toEqual(["capability-untrusted-events"]);
    expect(errors(`${base}\npipeline_source: external_pull_request_event`)).toEqual(["capability-untrusted-events"]);
    expect(errors(`${base}\npipeline_source: { not: schedule }`)).toEqual(["capability-untrusted-events"]);
    expect(errors(`${base}\npipeline_source: "*"`, undefined, EVERY_ACK)).toEqual(["capability-untrusted-events"]);
  });

  it("requires id scope: a path, a wildcard id or a negated id is refused, even acknowledged", () => {
    const safe = `ref_protected: "true"\npipeline_source: [push, web]`;
    expect(errors(`project_path: platform/policies\n${safe}`)).toEqual(["capability-id-scope"]);
    expect(errors(`project_path: platform/policies\n${safe}`, undefined, "acknowledge: { path_scope: true }")).toEqual([
      "capability-id-scope",
    ]);
    expect(errors(`project_id: "10*"\n${safe}`)).toEqual(expect.arrayContaining(["capability-id-scope"]));
    expect(errors(`project_id: { not: "5" }\n${safe}`)).toEqual(expect.arrayContaining(["capability-id-scope"]));
    expect(errors(`namespace_id: ["10", "11"]\n${safe}`)).toEqual([]);
    expect(errors(safe, undefined, "acknowledge: { broad: true }")).toEqual(["capability-id-scope"]);
  });

  it("applies to every capability, read-only ones included", () => {
    for (const capability of ["gatepass:policies-plan", "gatepass:audit-read", "gatepass:status-read"]) {
      expect(errors(`project_id: "101"`, `[${capability}]`), capability).toEqual([
        "capability-unprotected-ref",
        "capability-untrusted-events",
      ]);
    }
  });

  it("refuses capabilities for an issuer accepting legacy CI_JOB_JWT tokens", () => {
    const issuers = `${ISSUERS_YAML}  - { name: legacy, url: https://gitlab.legacy.example, audiences: [https://gatepass.example.com], accept_legacy_ci_job_jwt: true }\n`;
    expect(errors(SAFE, undefined, "", issuers, "legacy")).toEqual(["capability-legacy-tokens"]);
  });

  it("refuses capabilities for an issuer kind with no protected-ref and event claims (generic)", () => {
    const issuers = `${ISSUERS_YAML}  - { name: oidc, kind: generic, url: https://idp.example.com, audiences: [https://gatepass.example.com] }\n`;
    expect(
      errors(`project_id: "101"\nref_protected: "true"\npipeline_source: push`, undefined, "", issuers, "oidc"),
    ).toEqual(["capability-issuer-kind"]);
  });

  it("reads a GitHub issuer's rule in GitHub's claims: protected ref, trusted events and a repository or owner id", () => {
    const issuers = `${ISSUERS_YAML}  - { name: gh, kind: github, url: https://token.actions.githubusercontent.com, audiences: [https://gatepass.example.com] }\n`;
    const safe = `repository_id: "701"\nref_protected: "true"\nevent_name: [push, workflow_dispatch]`;
    expect(errors(safe, undefined, "", issuers, "gh")).toEqual([]);
    expect(
      errors(
        `repository_id: "701"\nref_protected: "true"\nevent_name: { not: pull_request }`,
        undefined,
        "",
        issuers,
        "gh",
      ),
    ).toEqual(["capability-untrusted-events"]);
    expect(
      errors(`repository: org/policies\nref_protected: "true"\nevent_name: push`, undefined, "", issuers, "gh"),
    ).toEqual(["capability-id-scope"]);
  });
});

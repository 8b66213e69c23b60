// Issuer kinds beyond GitLab (src/verify/issuer-kinds/): `kind: github` and the declarative profiles
// (buildkite, circleci shipped). Lint has the same teeth for each, in the issuer's own claim names:
// scope, path-only scope, protected refs and untrusted runs (pull requests, forks, SSH reruns).
import { describe, expect, it } from "vitest";
import { checkPolicySources } from "../../../src/policy/policy-source";
import { ISSUERS_YAML, sources } from "./fixtures";

const KINDS_YAML = `${ISSUERS_YAML}  - name: gh
    kind: github
    url: https://token.actions.githubusercontent.com
    audiences: [https://gatepass.example.com]
  - name: bk
    kind: generic
    profile: buildkite
    url: https://agent.buildkite.com
    audiences: [https://gatepass.example.com]
  - name: circle
    kind: generic
    profile: circleci
    url: https://oidc.circleci.com/org/8c2a1e3e-0000-4000-8000-000000000001
    audiences: [https://gatepass.example.com]
`;

/** Findings for one rule of `issuer` (added to the fixture policy) as `severity code`. */
function lint(issuer: string, match: string, allow = "[deployer]", extra = ""): string[] {
  const body = `match:\n${match.replace(/^/gm, "  ")}\nallow: ${allow}${extra ? `\n${extra}` : ""}`;
  const rules = `rules:\n  - name: r\n    issuer: ${issuer}\n${body.replace(/^/gm, "    ")}\n`;
  return checkPolicySources(sources({ issuers: KINDS_YAML, rules })).findings.map(
    (f) => `${f.severity} ${f.code ?? f.message}`,
  );
}

const problems = (issuers: string, rules = "rules: []\n") =>
  checkPolicySources(sources({ issuers: `${ISSUERS_YAML}${issuers}`, rules })).findings.map((f) => f.message);

const GITHUB_SAFE = `ref: refs/heads/main\nref_protected: "true"\nevent_name: [push, workflow_dispatch, schedule]`;

describe("kind: github", () => {
  it("accepts a rule scoped by repository_id, protected, from push events, with no acknowledgement", () => {
    expect(lint("gh", `repository_id: 701\n${GITHUB_SAFE}`)).toEqual([]);
    expect(lint("gh", `repository_owner_id: 70\n${GITHUB_SAFE}`)).toEqual([]);
  });

  it("refuses a rule without a repository or owner scope, naming GitHub's claims", () => {
    expect(lint("gh", "ref: refs/heads/main", "[reader]")).toEqual(["error no-scope"]);
    const [finding] = checkPolicySources(
      sources({
        issuers: KINDS_YAML,
        rules: "rules:\n  - { name: r, issuer: gh, match: { ref: refs/heads/main }, allow: [reader] }\n",
      }),
    ).findings;
    expect(finding!.message).toMatch(/add repository_id, repository, repository_owner_id or repository_owner/);
  });

  it("refuses privileged targets from unprotected refs and from pull-request events, pull_request_target included", () => {
    expect(lint("gh", "repository_id: 701\nevent_name: [push]")).toEqual(["error privileged-unprotected-ref"]);
    expect(lint("gh", `repository_id: 701\nref_protected: "true"`)).toEqual(["error privileged-merge-requests"]);
    // pull_request_target runs on the base branch, so ref_protected can be "true": only event_name keeps it out.
    for (const events of [
      "[push, pull_request_target]",
      "{ not: pull_request }",
      "[push, workflow_run]",
      '"pull_request*"',
    ]) {
      expect(lint("gh", `repository_id: 701\nref_protected: "true"\nevent_name: ${events}`), events).toEqual([
        "error privileged-merge-requests",
      ]);
    }
    expect(
      lint("gh", `repository_id: 701\nevent_name: [push]`, "[deployer]", "acknowledge: { unprotected: true }"),
    ).toEqual([]);
  });

  it("warns when a privileged target is reached by repository name alone (repojacking after a rename or deletion)", () => {
    expect(lint("gh", `repository: platform/infra\n${GITHUB_SAFE}`)).toEqual(["warning privileged-path-scope"]);
    expect(lint("gh", `repository: platform/infra\nrepository_id: 701\n${GITHUB_SAFE}`)).toEqual([]);
  });

  it("needs no ref_type next to ref (GitHub's ref is the full refs/heads/... or refs/tags/...), and has no child-pipeline check", () => {
    expect(lint("gh", "repository_id: 701\nref: refs/heads/main", "[reader]")).toEqual([]);
    expect(
      lint("gh", `repository_id: 701\n${GITHUB_SAFE}`, "[deployer]", "acknowledge: { child_pipelines: true }"),
    ).toEqual(["warning unneeded-acknowledgement"]);
  });

  it("refuses claim names GitHub does not send, and GitLab's names", () => {
    const findings = checkPolicySources(
      sources({
        issuers: KINDS_YAML,
        rules:
          "rules:\n  - { name: r, issuer: gh, match: { repository_id: 1, project_id: 1, event_nme: push }, allow: [reader] }\n",
      }),
    ).findings.map((f) => f.message);
    expect(findings).toEqual([
      "'project_id' is not a GitHub Actions token claim (see docs/github.md for the list)",
      "'event_nme' is not a GitHub Actions token claim (see docs/github.md for the list)",
    ]);
  });

  it("accepts GitHub's issuer forms and refuses other URLs, GitHub's default audience and legacy tokens", () => {
    const issuer = (url: string, audience = "https://gatepass.example.com", extra = "") =>
      `  - { name: g, kind: github, url: "${url}", audiences: ["${audience}"]${extra} }\n`;
    for (const url of [
      "https://token.actions.githubusercontent.com",
      "https://token.actions.githubusercontent.com/octocat-inc",
      "https://ghes.example.com/_services/token",
      "https://token.actions.octocorp.ghe.com",
    ]) {
      expect(problems(issuer(url)), url).toEqual([]);
    }
    expect(problems(issuer("https://gitlab.example.org"))[0]).toMatch(/is not a GitHub Actions issuer/);
    expect(problems(issuer("https://token.actions.githubusercontent.com", "https://github.com/octo-org"))[0]).toMatch(
      /is GitHub's default audience/,
    );
    expect(
      problems(issuer("https://ghes.example.com/_services/token", "https://ghes.example.com/octo-org"))[0],
    ).toMatch(/is GitHub's default audience/);
    expect(
      problems(
        issuer(
          "https://token.actions.githubusercontent.com",
          "https://gatepass.example.com",
          ", accept_legacy_ci_job_jwt: true",
        ),
      )[0],
    ).toMatch(/legacy CI_JOB_JWT tokens are GitLab's/);
  });
});

describe("issuer profiles", () => {
  it("expands a shipped profile into the stored issuer, and refuses unknown names and profiles on other kinds", () => {
    const { policy } = checkPolicySources(sources({ issuers: KINDS_YAML }));
    expect(policy!.issuers.find((i) => i.name === "bk")!.profile).toMatchObject({
      name: "buildkite",
      project_id: "pipeline_id",
      owner_id: "organization_id",
      owner_path: "organization_slug",
    });
    expect(
      problems("  - { name: x, kind: generic, profile: jenkins, url: https://x.example, audiences: [a] }\n")[0],
    ).toMatch(/'jenkins' is not a shipped profile \(buildkite, circleci\)/);
    expect(
      problems(
        "  - { name: x, kind: github, profile: buildkite, url: https://token.actions.githubusercontent.com, audiences: [a] }\n",
      )[0],
    ).toMatch(/profile is for kind: generic issuers/);
  });

  it("buildkite: scoped by pipeline_id or organization_id; a pipeline slug is no scope (every organization shares the issuer)", () => {
    expect(lint("bk", "pipeline_id: 0184990a-4782-42b5-afc1-16715b10b1l0", "[reader]")).toEqual([]);
    expect(lint("bk", "organization_id: 0184990a-477b-4fa8-9968-496074483k77", "[reader]")).toEqual([]);
    expect(lint("bk", "pipeline_slug: deploy", "[reader]")).toEqual(["error no-scope"]);
    expect(lint("bk", "organization_slug: acme-inc\npipeline_slug: deploy", "[reader]")).toEqual([]);
  });

  it("buildkite: privileged targets need acknowledge.unprotected, since its tokens cannot say a branch is protected", () => {
    expect(lint("bk", "pipeline_id: p-1\nbuild_branch: main")).toEqual(["error privileged-unprotected-ref"]);
    expect(
      lint("bk", "pipeline_id: p-1\nbuild_branch: main", "[deployer]", "acknowledge: { unprotected: true }"),
    ).toEqual([]);
    expect(
      lint("bk", "organization_slug: acme-inc\nbuild_branch: main", "[deployer]", "acknowledge: { unprotected: true }"),
    ).toEqual(["warning privileged-path-scope"]);
  });

  it("circleci: scoped by project id; SSH reruns are untrusted runs a privileged rule must exclude", () => {
    expect(lint("circle", "oidc.circleci.com/project-id: 5e1a-p", "[reader]")).toEqual([]);
    const ssh = `"oidc.circleci.com/ssh-rerun"`;
    expect(
      lint(
        "circle",
        `oidc.circleci.com/project-id: 5e1a-p\n${ssh}: "false"`,
        "[deployer]",
        "acknowledge: { unprotected: true }",
      ),
    ).toEqual([]);
    expect(lint("circle", "oidc.circleci.com/project-id: 5e1a-p", "[deployer]")).toEqual([
      "error privileged-unprotected-ref",
      "error privileged-merge-requests",
    ]);
  });

  it("an inline profile names the claims lint uses, protected ref included", () => {
    const inline = `  - name: forge
    kind: generic
    url: https://forge.example.com/api/actions
    audiences: [https://gatepass.example.com]
    profile: { project_id: repo_id, project_path: repo, protected_ref: { claim: branch_protected, value: "yes" }, untrusted: { claim: trigger, values: [pull_request] }, copy: [repo] }
`;
    const findings = (match: string, allow = "[deployer]") =>
      checkPolicySources(
        sources({
          issuers: `${ISSUERS_YAML}${inline}`,
          rules: `rules:\n  - name: r\n    issuer: forge\n    match: ${match}\n    allow: ${allow}\n`,
        }),
      ).findings.map((f) => f.code);
    expect(findings(`{ repo_id: "7", branch_protected: "yes", trigger: [push] }`)).toEqual([]);
    expect(findings(`{ repo_id: "7", trigger: [push] }`)).toEqual(["privileged-unprotected-ref"]);
    expect(findings(`{ repo_id: "7", branch_protected: "yes" }`)).toEqual(["privileged-merge-requests"]);
    expect(findings(`{ repo: acme/app, branch_protected: "yes", trigger: [push] }`)).toEqual(["privileged-path-scope"]);
  });
});

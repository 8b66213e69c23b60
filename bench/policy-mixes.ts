// The policies and CI jobs the policy benchmark measures (bench/policy.ts, bench/policy-worker.ts).
// An organisation of groups, teams and projects (`org-G/team-T/project-P`), with three mixes of rules:
//   exact     every rule names one project: `project_path: org-3/team-12/project-7`
//   namespace every rule names a team by glob: `namespace_path: org-3/team-12/**` or
//             `project_path: org-3/team-12/*` (at 10 000 rules about ten per team, each for other refs or
//             targets), one in twenty a whole group: `namespace_path: org-3/**` (about ten per group)
//   mixed     60% exact, 30% namespace globs (of which a third `project_path: org-G/team-T/*`), 10% with
//             no project scope (`acknowledge: broad`): per shared CI template (ci_config_ref_uri), per
//             deployment environment, per user, per group membership, and a handful of truly broad
//             ones (every tag `v*`, every scheduled pipeline) that every such token must look at.
// Jobs are drawn from the projects the rules name; a third ask for a ref no rule allows.
import type { IssuerConfig, RuleSpec, Target, VerifiedIdentity } from "../src/types";

export const MIXES = ["exact", "namespace", "mixed"] as const;
export type Mix = (typeof MIXES)[number];

export const ISSUER: IssuerConfig = {
  name: "corp-gitlab",
  url: "https://gitlab.example.com",
  kind: "gitlab",
  aliases: [],
  audiences: ["https://gatepass.example.com"],
  algorithms: ["RS256"],
  keys: { source: "discovery" },
  max_token_age_seconds: 3600,
  accept_legacy_ci_job_jwt: false,
};

const TARGET_COUNT = 20;
export const TARGETS: Target[] = Array.from({ length: TARGET_COUNT }, (_, i) => ({
  name: `target-${i}`,
  type: "oidc",
  audience: `https://service-${i}.example.com`,
  privileged: false,
  signing_alg: "ES256",
  max_lifetime_seconds: 3600,
}));

const GROUPS = 50;
const TEAMS_PER_GROUP = 20;
const target = (i: number) => `target-${i % TARGET_COUNT}`;
const group = (i: number) => `org-${i % GROUPS}`;
const team = (i: number) => `${group(i)}/team-${Math.floor(i / GROUPS) % TEAMS_PER_GROUP}`;
const project = (i: number) => `${team(i)}/project-${i}`;
const REFS = [
  { ref_type: "branch", ref: "main", ref_protected: "true" },
  { ref_type: "branch", ref: "release/*" },
  { ref_type: "tag", ref: "v*" },
] as const;

function exactRule(i: number): RuleSpec {
  return {
    name: `project-${i}`,
    issuer: ISSUER.name,
    match: {
      project_path: project(i),
      ref_type: "branch",
      ref: "main",
      ref_protected: "true",
      pipeline_source: ["push", "web", "schedule"],
    },
    allow: [target(i), target(i + 1)],
  };
}

function namespaceRule(i: number): RuleSpec {
  const refs = REFS[i % REFS.length]!;
  // Group-wide rules go round the groups in turn (i / 20), so every group has as many.
  const scope: RuleSpec["match"] =
    i % 20 === 0
      ? { namespace_path: `${group(i / 20)}/**` }
      : i % 3 === 2
        ? { project_path: `${team(i)}/*` }
        : { namespace_path: `${team(i)}/**` };
  return {
    name: `namespace-${i}`,
    issuer: ISSUER.name,
    match: { ...scope, ...refs, pipeline_source: { not: "merge_request_event" } },
    allow: [target(i + 2)],
  };
}

function unscopedRule(i: number): RuleSpec {
  const kinds: RuleSpec["match"][] = [
    {
      ci_config_ref_uri: `gitlab.example.com/ci-templates/deploy-${i}//deploy.yml@refs/heads/main`,
      ref_protected: "true",
    },
    { environment: `env-${i}`, environment_protected: "true" },
    { user_login: `user-${i}`, ref_type: "branch" },
    { groups_direct: `${group(i)}/admins-${i}`, ref_protected: "true" },
  ];
  // One unscoped rule in fifty is truly broad: every token of its kind looks at it.
  const match: RuleSpec["match"] =
    i % 50 === 0
      ? i % 100 === 0
        ? { ref_type: "tag", ref: "v*" }
        : { pipeline_source: "schedule", ref_protected: "true" }
      : kinds[i % kinds.length]!;
  return { name: `unscoped-${i}`, issuer: ISSUER.name, match, allow: [target(i + 3)], acknowledge: { broad: true } };
}

/** `count` rules of the mix, in a stable order (rule i is the same for every count). */
export function rulesFor(mix: Mix, count: number): RuleSpec[] {
  return Array.from({ length: count }, (_, i) => {
    if (mix === "exact") return exactRule(i);
    if (mix === "namespace") return namespaceRule(i);
    const tenth = i % 10;
    return tenth < 6 ? exactRule(i) : tenth < 9 ? namespaceRule(i) : unscopedRule(i);
  });
}

/** `n` jobs for a policy of `count` rules: projects the rules name, a third on a ref no rule allows. */
export function jobsFor(count: number, n: number): { identity: VerifiedIdentity; target: string }[] {
  return Array.from({ length: n }, (_, k) => {
    const i = (k * 7919) % count;
    const denied = k % 3 === 0;
    const claims: Record<string, string | string[]> = {
      project_path: project(i),
      project_id: String(100_000 + i),
      namespace_path: team(i),
      namespace_id: String(1_000 + (i % (GROUPS * TEAMS_PER_GROUP))),
      ref: denied ? "feature/x" : k % 3 === 1 ? "main" : "release/2",
      ref_type: "branch",
      ref_protected: k % 3 === 1 ? "true" : "false",
      ref_path: "refs/heads/main",
      pipeline_source: "push",
      user_login: `user-${(k * 31) % count}`,
      groups_direct: [`${group(i)}/developers`, `${group(i)}/admins-${(k * 17) % count}`],
      environment: `env-${(k * 13) % count}`,
      environment_protected: "false",
      ci_config_ref_uri: `gitlab.example.com/${project(i)}//.gitlab-ci.yml@refs/heads/main`,
    };
    return {
      identity: {
        issuer: ISSUER.name,
        issuerUrl: ISSUER.url,
        claims,
        tokenSha256: "",
        issuedAt: 0,
        expiresAt: 0,
        legacy: false,
      },
      target: target(i + (k % 3)),
    };
  });
}

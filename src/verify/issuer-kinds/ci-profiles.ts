// Declarative issuer profiles for CIs other than GitLab and GitHub: which claims identify a project and
// its owner by id, which are paths, which says a ref is protected, which mark an untrusted run, and
// which are copied into minted tokens. An issuer names a shipped profile (`profile: buildkite`) or
// writes one inline; the policy stores it expanded, so a snapshot keeps meaning what it meant when it
// was pushed. Lint, explain and minting read an issuer through its profile (claim-vocabulary.ts).

import type { IssuerProfile } from "../../types";

/**
 * Buildkite Pipelines, from Buildkite's "buildkite-agent oidc request-token" reference ("Token contents"
 * and "Optional claims"). Every Buildkite organization shares the issuer https://agent.buildkite.com,
 * so a slug alone is not a scope across organizations: the owner is organization_id (or
 * organization_slug), the project pipeline_id. Both ids are optional claims a job asks for with
 * `--claim organization_id,pipeline_id`. Buildkite's tokens say nothing about branch protection.
 */
const BUILDKITE: IssuerProfile = {
  name: "buildkite",
  project_id: "pipeline_id",
  owner_id: "organization_id",
  owner_path: "organization_slug",
  copy: [
    "organization_id",
    "organization_slug",
    "pipeline_id",
    "pipeline_slug",
    "build_number",
    "build_branch",
    "build_tag",
    "build_commit",
    "step_key",
    "job_id",
    "agent_id",
  ],
};

/**
 * CircleCI, from CircleCI's "OpenID Connect tokens" page. The issuer is per organization
 * (https://oidc.circleci.com/org/<organization id>), so the issuer itself pins the owner; the project is
 * `oidc.circleci.com/project-id` and its repository `oidc.circleci.com/vcs-origin` (a path). A job
 * started with "Rerun job with SSH" (`oidc.circleci.com/ssh-rerun` true) runs whatever the person
 * connected types, with the job's token. CircleCI's tokens say nothing about branch protection.
 */
const CIRCLECI: IssuerProfile = {
  name: "circleci",
  project_id: "oidc.circleci.com/project-id",
  project_path: "oidc.circleci.com/vcs-origin",
  untrusted: { claim: "oidc.circleci.com/ssh-rerun", values: ["true"] },
  copy: ["oidc.circleci.com/project-id", "oidc.circleci.com/vcs-origin", "oidc.circleci.com/vcs-ref"],
};

/** The profiles gatepass ships, by the name an issuer's `profile:` may give. */
export const SHIPPED_PROFILES: ReadonlyMap<string, IssuerProfile> = new Map(
  [BUILDKITE, CIRCLECI].map((profile) => [profile.name!, profile]),
);

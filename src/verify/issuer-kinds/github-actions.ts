// GitHub Actions ID tokens (`kind: github`): the claims GitHub documents, how each is read, and the
// issuer URLs GitHub signs with. Source: GitHub's "OpenID Connect reference"
// (docs.github.com/en/actions/reference/security/oidc, "OIDC token claims") and its example token
// (docs.github.com/en/actions/concepts/security/openid-connect, "Understanding the OIDC token").

import { isLoopbackHost } from "../../config";
import type { ClaimType } from "../../types";

/**
 * Every claim GitHub documents for Actions ID tokens. Ids are decimal strings in GitHub's tokens
 * (`"repository_id": "74"`), read strictly like GitLab's. `ref_protected` ("true"/"false") is not in
 * the reference's table but in the `github` context and in GitHub's tokens; a token without it never
 * satisfies `ref_protected: "true"`, so its absence can only deny.
 */
export const GITHUB_TOKEN_CLAIMS: Readonly<Record<string, ClaimType>> = {
  iss: "scalar",
  sub: "scalar",
  aud: "list",
  jti: "scalar",
  iat: "scalar",
  nbf: "scalar",
  exp: "scalar",
  actor: "scalar",
  actor_id: "id",
  base_ref: "scalar",
  head_ref: "scalar",
  check_run_id: "id",
  enterprise: "scalar",
  enterprise_id: "id",
  environment: "scalar",
  event_name: "scalar",
  job_workflow_ref: "scalar",
  job_workflow_sha: "scalar",
  ref: "scalar",
  ref_type: "scalar",
  ref_protected: "scalar",
  repository: "scalar",
  repository_id: "id",
  repository_owner: "scalar",
  repository_owner_id: "id",
  repository_visibility: "scalar",
  run_id: "id",
  run_number: "id",
  run_attempt: "id",
  runner_environment: "scalar",
  sha: "scalar",
  workflow: "scalar",
  workflow_ref: "scalar",
  workflow_sha: "scalar",
};

/** What a GitHub issuer's tokens must carry to be workflow job tokens. */
export const GITHUB_CI_CLAIMS = ["repository_id", "repository_owner_id", "run_id"] as const;

/**
 * Events whose workflow runs on behalf of a pull request, possibly from a fork: `pull_request*`
 * (the fork's code), `pull_request_target` (the base repository's privileges and, often, the fork's
 * checked-out code; its `ref` is the base branch, so `ref_protected` can be "true"), and
 * `workflow_run` / `issue_comment` (privileged runs that pull-request authors can trigger).
 */
export const GITHUB_UNTRUSTED_EVENTS = [
  "pull_request",
  "pull_request_target",
  "pull_request_review",
  "pull_request_review_comment",
  "workflow_run",
  "issue_comment",
] as const;

/** Claims copied into minted tokens: strings that cloud conditions use; `actor` (a person) is left out. */
export const GITHUB_COPIED_CLAIMS = [
  "repository",
  "repository_id",
  "repository_owner",
  "repository_owner_id",
  "repository_visibility",
  "ref",
  "ref_type",
  "ref_protected",
  "sha",
  "environment",
  "event_name",
  "workflow_ref",
  "workflow_sha",
  "job_workflow_ref",
  "job_workflow_sha",
  "run_id",
  "run_attempt",
  "runner_environment",
  "enterprise",
  "enterprise_id",
] as const;

/**
 * GitHub's issuer URLs: github.com's, an enterprise's own (`…/<enterprise>`, when the enterprise
 * sets include_enterprise_slug), GHE.com data residency (`https://token.actions.<subdomain>.ghe.com`)
 * and GitHub Enterprise Server's `https://HOST/_services/token` (and, for local stand-ins, http on
 * loopback). A `kind: github` issuer whose URL is
 * none of these is refused: it would get GitHub's vocabulary without GitHub's tokens.
 */
export function githubIssuerUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined; // the URL check reports it
  }
  const path = parsed.pathname.replace(/\/$/, "");
  if (parsed.hostname === "token.actions.githubusercontent.com" && /^(\/[A-Za-z0-9-]+)?$/.test(path)) return undefined;
  if (/^token\.actions\.[a-z0-9-]+\.ghe\.com$/.test(parsed.hostname) && /^(\/[A-Za-z0-9-]+)?$/.test(path))
    return undefined;
  if (path === "/_services/token") return undefined;
  // Local stand-ins (`gatepass dev`, tests): http on loopback, which the Worker accepts only in development mode.
  if (parsed.protocol === "http:" && isLoopbackHost(parsed.hostname)) return undefined;
  return (
    `'${url}' is not a GitHub Actions issuer: use https://token.actions.githubusercontent.com, its enterprise form ` +
    "https://token.actions.githubusercontent.com/<enterprise>, or GitHub Enterprise Server's " +
    "https://HOST/_services/token"
  );
}

/**
 * GitHub's default audience is the repository owner's URL (`https://github.com/<owner>`; on GitHub
 * Enterprise Server `https://HOST/<owner>`, on GHE.com `https://<subdomain>.ghe.com/<owner>`): every
 * workflow of the owner that asks for a token without an audience gets one and hands it to whatever it
 * calls. Accepting it would let any of those services replay the token to gatepass, so a `kind: github`
 * issuer needs an audience of its own.
 */
export function githubAudienceProblem(audience: string, issuerUrl: string): string | undefined {
  let aud: URL;
  try {
    aud = new URL(audience);
  } catch {
    return undefined; // not a URL: not GitHub's default
  }
  const issuerHost = new URL(issuerUrl).hostname;
  const owners = new Set(["github.com", issuerHost, issuerHost.replace(/^token\.actions\./, "")]);
  if (!owners.has(aud.hostname.toLowerCase()) || !/^\/[^/]+\/?$/.test(aud.pathname)) return undefined;
  return (
    `'${audience}' is GitHub's default audience (the repository owner's URL), which every workflow of that owner ` +
    `gets without ` +
    "asking and passes to other services: choose an audience for gatepass alone (e.g. https://gatepass.example.com) " +
    "and request it " +
    "with &audience= on ACTIONS_ID_TOKEN_REQUEST_URL (docs/github.md)"
  );
}

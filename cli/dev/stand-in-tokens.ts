// The CI tokens `gatepass dev token` prints: GitLab-shaped or GitHub-shaped, signed with the stand-in
// issuers' key. The caller picks project, ref, protection, event, audience and lifetime; the other
// claims are fixed local values (ids derived from the paths, user "dev", sha zeros).

import { SignJWT, importJWK, type JWK } from "jose";
import { LOCAL_GITHUB_ISSUER, LOCAL_ISSUER } from "./stand-in-issuers";

/** What `dev token` was asked for, its options checked. */
export interface StandInTokenRequest {
  kind: "gitlab" | "github";
  project: string;
  ref: string;
  refType: string;
  protectedRef: string;
  pipelineSource: string;
  event: string;
  aud: string;
  ttl: number;
  now: number;
}

type SigningKey = Awaited<ReturnType<typeof importJWK>>;

interface TokenInput extends StandInTokenRequest {
  namespace: string;
}

export async function mintStandInToken(jwk: JWK, request: StandInTokenRequest): Promise<string> {
  const key = await importJWK(jwk, "RS256");
  const { project } = request;
  const namespace = project.includes("/") ? project.slice(0, project.lastIndexOf("/")) : project;
  const input = { ...request, namespace };
  return request.kind === "github" ? githubToken(key, jwk.kid!, input) : gitlabToken(key, jwk.kid!, input);
}

/** A stable numeric id (decimal string) for a path, as CI platforms give projects and namespaces. */
function id(text: string): string {
  return String(1000 + [...text].reduce((sum, ch) => (sum * 31 + ch.charCodeAt(0)) % 900_000, 7));
}

/** A token with the claims of a GitLab CI job token, from the local stand-in GitLab issuer. */
function gitlabToken(key: SigningKey, kid: string, input: TokenInput): Promise<string> {
  const { project, namespace, refType, now } = input;
  return new SignJWT({
    namespace_id: id(namespace),
    namespace_path: namespace,
    project_id: id(project),
    project_path: project,
    user_id: "1",
    user_login: "dev",
    user_email: "dev@example.com",
    user_access_level: "maintainer",
    pipeline_id: String(now),
    pipeline_source: input.pipelineSource,
    job_id: String(now + 1),
    ref: input.ref,
    ref_type: refType,
    ref_path: `refs/${refType === "tag" ? "tags" : "heads"}/${input.ref}`,
    ref_protected: input.protectedRef,
    runner_id: 1,
    runner_environment: "self-hosted",
    sha: "0".repeat(40),
    project_visibility: "private",
    ci_config_ref_uri: `127.0.0.1:8788/${project}//.gitlab-ci.yml@refs/heads/${input.ref}`,
    ci_config_sha: "0".repeat(40),
    jti: crypto.randomUUID(),
  })
    .setProtectedHeader({ alg: "RS256", typ: "JWT", kid })
    .setIssuer(LOCAL_ISSUER.url)
    .setSubject(`project_path:${project}:ref_type:${refType}:ref:${input.ref}`)
    .setAudience(input.aud)
    .setIssuedAt(now)
    .setNotBefore(now - 5)
    .setExpirationTime(now + input.ttl)
    .sign(key);
}

/**
 * A token with the claims GitHub's OIDC reference documents (ids as decimal strings), from the local stand-in GitHub
 * issuer.
 */
function githubToken(key: SigningKey, kid: string, input: TokenInput): Promise<string> {
  const ref = `refs/${input.refType === "tag" ? "tags" : "heads"}/${input.ref}`;
  const workflowRef = `${input.project}/.github/workflows/deploy.yml@${ref}`;
  const pullRequest = input.event.startsWith("pull_request");
  return new SignJWT({
    jti: crypto.randomUUID(),
    ref,
    ref_type: input.refType,
    ref_protected: input.protectedRef,
    sha: "0".repeat(40),
    repository: input.project,
    repository_id: id(input.project),
    repository_owner: input.namespace,
    repository_owner_id: id(input.namespace),
    repository_visibility: "private",
    actor: "dev",
    actor_id: "1",
    run_id: String(input.now),
    run_number: "1",
    run_attempt: "1",
    runner_environment: "self-hosted",
    workflow: "deploy",
    workflow_ref: workflowRef,
    workflow_sha: "0".repeat(40),
    job_workflow_ref: workflowRef,
    job_workflow_sha: "0".repeat(40),
    event_name: input.event,
    head_ref: pullRequest ? "feature" : "",
    base_ref: pullRequest ? input.ref : "",
  })
    .setProtectedHeader({ alg: "RS256", typ: "JWT", kid })
    .setIssuer(LOCAL_GITHUB_ISSUER.url)
    .setSubject(pullRequest ? `repo:${input.project}:pull_request` : `repo:${input.project}:ref:${ref}`)
    .setAudience(input.aud)
    .setIssuedAt(input.now)
    .setNotBefore(input.now - 5)
    .setExpirationTime(input.now + input.ttl)
    .sign(key);
}

// gatepass's OpenID Provider documents: what clouds fetch to trust the tokens gatepass mints.

import { ISSUER_DOCUMENT_MAX_AGE_SECONDS } from "../limits";
import type { KeyRing, PublicJwk } from "../signing-keys/signing-key-secret";
import { GITHUB_COPIED_CLAIMS } from "../verify/issuer-kinds/github-actions";
import { COPIED_CI_CLAIMS, OWN_CLAIMS } from "./minted-token";

export const DISCOVERY_PATH = "/.well-known/openid-configuration";
export const JWKS_PATH = "/.well-known/jwks.json";

/** Relying parties may cache both documents briefly; a rotation publishes the next key well ahead. */
export const ISSUER_DOCUMENT_CACHE_CONTROL = `public, max-age=${ISSUER_DOCUMENT_MAX_AGE_SECONDS}`;

export function discoveryDocument(issuer: string, keys: KeyRing): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer}${JWKS_PATH}`,
    // gatepass issues tokens only through its own exchange endpoints, never via a browser flow; the
    // fields below are required by OpenID Connect Discovery and by AWS/GCP issuer validation.
    response_types_supported: ["id_token"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: keys.algorithms(),
    scopes_supported: ["openid"],
    // GitLab's and GitHub's copied claims (a profile's `copy` names its own, which the policy knows, not this
    // document).
    claims_supported: [...new Set([...OWN_CLAIMS, ...COPIED_CI_CLAIMS, ...GITHUB_COPIED_CLAIMS])],
    token_endpoint: `${issuer}/v1/token`,
    grant_types_supported: ["urn:ietf:params:oauth:grant-type:token-exchange"],
  };
}

export function jwksDocument(keys: KeyRing, now: number): { keys: PublicJwk[] } {
  return { keys: keys.published(now) };
}

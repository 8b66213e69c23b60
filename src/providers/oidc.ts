// oidc: the minted token is the credential, for relying parties that trust gatepass directly (and
// for clients that do the cloud exchange themselves, e.g. an AWS SDK web-identity token file).

import type { MintedToken } from "../mint/minted-token";
import type { OidcTarget } from "../types";
import type { IdTokenCredential } from "./provider-credential";

export function oidcCredential(target: OidcTarget, minted: MintedToken): IdTokenCredential {
  return {
    kind: "id_token",
    provider: "oidc",
    target: target.name,
    idToken: minted.token,
    audience: minted.claims.aud,
    expiresAt: minted.claims.exp,
  };
}

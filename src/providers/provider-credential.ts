// What a provider hands back, whatever the cloud: one small union the formatters switch on.

import type { TargetType } from "../types";

interface CredentialBase {
  provider: TargetType;
  target: string;
  /** Seconds since epoch. */
  expiresAt: number;
}

/** A bearer access token (GCP, Azure). */
export interface AccessTokenCredential extends CredentialBase {
  kind: "access_token";
  accessToken: string;
  scopes: string[];
  /** GCP: the impersonated service account, when there is one. */
  serviceAccount?: string;
}

/** A JWT for an audience: a GCP ID token, or gatepass's own minted token (oidc targets). */
export interface IdTokenCredential extends CredentialBase {
  kind: "id_token";
  idToken: string;
  audience: string;
  serviceAccount?: string;
}

export interface AwsCredential extends CredentialBase {
  kind: "aws";
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  assumedRoleArn?: string;
  region: string;
}

export interface VaultCredential extends CredentialBase {
  kind: "vault";
  clientToken: string;
  address: string;
  /** The namespace the token belongs to; Vault's CLI and API need it on every later request. */
  namespace?: string;
  leaseDurationSeconds: number;
  renewable: boolean;
  policies: string[];
}

export type Credential = AccessTokenCredential | IdTokenCredential | AwsCredential | VaultCredential;

/** The caller's wishes, already parsed (units and syntax) but not yet checked against the target. */
export interface ExchangeRequest {
  lifetimeSeconds?: number;
  scopes?: string[];
  /** GCP: ask for an ID token for this audience instead of an access token. */
  audience?: string;
}

// JSON, env and credential_process views of a credential.

import { GatepassError } from "../errors";
import type { Credential } from "../providers/provider-credential";
import type { EnvEntries } from "./shell-quoting";

/**
 * Where `env`/`dotenv` put an issued ID token (oidc targets, GCP `audience=`). Never
 * GATEPASS_ID_TOKEN: that is the CI job's own token (templates/gatepass.yml declares it under
 * id_tokens:), and overwriting it would make every later gatepass call in the job send the issued
 * token instead (issuer_unknown). shell-quoting.ts refuses to export over the job's variables at all.
 */
export const ISSUED_ID_TOKEN_VARIABLE = "GATEPASS_ISSUED_ID_TOKEN";

const rfc3339 = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

/** The default JSON body: snake_case, times as RFC 3339 plus integer expires_in. */
export function credentialJson(credential: Credential, now: number): Record<string, unknown> {
  const common = {
    target: credential.target,
    provider: credential.provider,
    expires_at: rfc3339(credential.expiresAt),
    expires_in: Math.max(0, credential.expiresAt - now),
  };
  switch (credential.kind) {
    case "access_token":
      return {
        ...common,
        access_token: credential.accessToken,
        token_type: "Bearer",
        scope: credential.scopes.join(" "),
        ...(credential.serviceAccount ? { service_account: credential.serviceAccount } : {}),
      };
    case "id_token":
      return {
        ...common,
        id_token: credential.idToken,
        audience: credential.audience,
        ...(credential.serviceAccount ? { service_account: credential.serviceAccount } : {}),
      };
    case "aws":
      return {
        ...common,
        access_key_id: credential.accessKeyId,
        secret_access_key: credential.secretAccessKey,
        session_token: credential.sessionToken,
        region: credential.region,
        ...(credential.assumedRoleArn ? { assumed_role_arn: credential.assumedRoleArn } : {}),
      };
    case "vault":
      return {
        ...common,
        client_token: credential.clientToken,
        vault_addr: credential.address,
        ...(credential.namespace ? { vault_namespace: credential.namespace } : {}),
        lease_duration: credential.leaseDurationSeconds,
        renewable: credential.renewable,
        policies: credential.policies,
      };
  }
}

/** The variables the clouds' own tools read. */
export function credentialEnv(credential: Credential): EnvEntries {
  switch (credential.kind) {
    case "access_token":
      return credential.provider === "gcp"
        ? [
            ["GOOGLE_OAUTH_ACCESS_TOKEN", credential.accessToken],
            ["CLOUDSDK_AUTH_ACCESS_TOKEN", credential.accessToken],
          ]
        : [["AZURE_ACCESS_TOKEN", credential.accessToken]];
    case "id_token":
      return [[ISSUED_ID_TOKEN_VARIABLE, credential.idToken]];
    case "aws":
      return [
        ["AWS_ACCESS_KEY_ID", credential.accessKeyId],
        ["AWS_SECRET_ACCESS_KEY", credential.secretAccessKey],
        ["AWS_SESSION_TOKEN", credential.sessionToken],
        ["AWS_CREDENTIAL_EXPIRATION", rfc3339(credential.expiresAt)],
      ];
    case "vault":
      return [
        ["VAULT_TOKEN", credential.clientToken],
        ["VAULT_ADDR", credential.address],
        ...(credential.namespace ? [["VAULT_NAMESPACE", credential.namespace] as const] : []),
      ];
  }
}

/** AWS CLI/SDK `credential_process` output (Version 1). */
export function credentialProcess(credential: Credential): Record<string, unknown> {
  if (credential.kind !== "aws") {
    throw new GatepassError("format_unsupported", {
      description: "format=credential_process is only available for aws targets.",
    });
  }
  return {
    Version: 1,
    AccessKeyId: credential.accessKeyId,
    SecretAccessKey: credential.secretAccessKey,
    SessionToken: credential.sessionToken,
    Expiration: rfc3339(credential.expiresAt),
  };
}

// `format=gcloud`: a Google external_account credential config whose token_url is gatepass's
// STS-compatible endpoint. Google's tools then read the CI token from `credential_source.file`, send
// it to gatepass, and get back the target's access token — refreshing on their own.

import type { GcpTarget } from "../types";

export const STS_PATH = "/v1/sts/token";

/** Where the config tells Google's tools to read the CI job's ID token, unless the caller says otherwise. */
export const DEFAULT_TOKEN_FILE = ".gatepass/ci-token";

export function gcloudConfig(issuer: string, target: GcpTarget, tokenFile: string): Record<string, unknown> {
  return {
    type: "external_account",
    // gatepass's STS endpoint reads the target name from the audience.
    audience: target.name,
    subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    token_url: `${issuer}${STS_PATH}`,
    credential_source: { file: tokenFile, format: { type: "text" } },
    universe_domain: "googleapis.com",
  };
}

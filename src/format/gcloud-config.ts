// `format=gcloud`: a Google external_account credential config whose token_url is gatepass's
// STS-compatible endpoint. Google's tools then read the CI token from `credential_source.file`, send
// it to gatepass, and get back the target's access token — refreshing on their own.

import { GatepassError } from "../errors";
import type { GcpTarget } from "../types";

export const STS_PATH = "/v1/sts/token";

/** A POSIX absolute path, or a Windows one with a drive letter. */
const ABSOLUTE_PATH = /^(\/|[A-Za-z]:[\\/])/;

/**
 * `token_file`: where the job writes its ID token for Google's tools to read. Required, and absolute:
 * the tools resolve a relative path against their own working directory, which is not the job's under
 * `terraform -chdir` or any tool that changes directory, and then fail to find the token.
 */
export function checkTokenFile(tokenFile: string | undefined): string {
  if (tokenFile === undefined) {
    throw new GatepassError("request_invalid", {
      description:
        "format=gcloud needs token_file: the absolute path where the job writes its ID token, e.g. " +
        "token_file=$CI_PROJECT_DIR/.gatepass/ci-token (the GitLab template does this).",
    });
  }
  if (!ABSOLUTE_PATH.test(tokenFile)) {
    throw new GatepassError("request_invalid", {
      description:
        "token_file must be an absolute path, e.g. $CI_PROJECT_DIR/.gatepass/ci-token: Google's tools resolve a " +
        "relative one against their own working directory (terraform -chdir changes it).",
    });
  }
  return tokenFile;
}

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

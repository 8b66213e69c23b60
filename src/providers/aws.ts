// AWS: AssumeRoleWithWebIdentity with the minted token (unsigned Query API POST, XML answer).

import { nowSeconds } from "../deps";
import { GatepassError } from "../errors";
import type { AwsTarget, VerifiedIdentity } from "../types";
import type { AwsCredential } from "./provider-credential";
import type { ProviderContext } from "./provider-context";
import type { ResolvedExchange } from "./request-checks";
import { callUpstream, checkedExpiresAt, formBody, malformed, safeCode } from "./upstream-call";
import { xmlText } from "./sts-xml";

const HINTS: Record<string, string> = {
  AccessDenied:
    "the role's trust policy does not allow this token; it must trust gatepass's OIDC provider with sub = the " +
    "target's subject and aud = the target's audience.",
  InvalidIdentityToken:
    "AWS could not validate the token; check the IAM OIDC provider's URL (GATEPASS_ISSUER) and that its discovery " +
    "is reachable.",
  IDPRejectedClaim: "the IAM OIDC provider rejected a claim; check its client id list (the target's audience).",
  ExpiredTokenException: "the minted token expired before AWS saw it; check clock skew and retry.",
  ValidationError: "AWS refused a parameter (for instance DurationSeconds above the role's maximum session duration).",
};

const RESULT = ["AssumeRoleWithWebIdentityResponse", "AssumeRoleWithWebIdentityResult"] as const;

export async function exchangeAws(
  target: AwsTarget,
  minted: string,
  resolved: ResolvedExchange,
  identity: VerifiedIdentity,
  ctx: ProviderContext,
): Promise<AwsCredential> {
  if (!/^[a-z0-9-]{1,32}$/.test(target.region)) {
    throw new GatepassError("internal_error", { cause: new Error(`target ${target.name}: bad region`) });
  }
  const now = nowSeconds(ctx.deps);
  const xml = await callUpstream(
    {
      service: "aws-sts",
      url: stsUrl(ctx.config.upstreams.awsSts, target.region),
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded; charset=utf-8", Accept: "application/xml" },
      body: formBody({
        Action: "AssumeRoleWithWebIdentity",
        Version: "2011-06-15",
        RoleArn: target.role_arn,
        RoleSessionName: sessionName(identity),
        WebIdentityToken: minted,
        DurationSeconds: String(resolved.lifetimeSeconds),
        Policy: target.session_policy,
      }),
      errorCode: (text) => safeCode(xmlText(text, ["ErrorResponse", "Error", "Code"]), "unknown_error"),
      hint: (code) => HINTS[code] ?? "check the role and its trust policy.",
      // AWS's documented advice: IDPCommunicationError is transient, retry.
      retryableCodes: ["IDPCommunicationError"],
    },
    ctx,
  );
  const field = (name: string) => xmlText(xml, [...RESULT, "Credentials", name]);
  const accessKeyId = field("AccessKeyId");
  const secretAccessKey = field("SecretAccessKey");
  const sessionToken = field("SessionToken");
  const expiration = field("Expiration");
  if (!accessKeyId || !secretAccessKey || !sessionToken || !expiration) throw malformed("aws-sts", "no Credentials");
  const expiresAt = checkedExpiresAt("aws-sts", "Expiration", Math.floor(Date.parse(expiration) / 1000), now);
  return {
    kind: "aws",
    provider: "aws",
    target: target.name,
    accessKeyId,
    secretAccessKey,
    sessionToken,
    expiresAt,
    assumedRoleArn: xmlText(xml, [...RESULT, "AssumedRoleUser", "Arn"]),
    region: target.region,
  };
}

/**
 * The regional STS endpoint: China's regions live under amazonaws.com.cn, the commercial and GovCloud
 * ones under amazonaws.com (the isolated ISO partitions are not supported).
 */
export function stsUrl(template: string, region: string): string {
  return template
    .replace("{region}", region)
    .replace("{dns_suffix}", region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com");
}

/**
 * `gitlab-<job_id>` (CloudTrail shows which job used the role), sanitised to AWS's
 * `[\w+=,.@-]{2,64}`; tokens without a job id use a prefix of the token hash, which audit also holds.
 */
export function sessionName(identity: VerifiedIdentity): string {
  const jobId = identity.claims.job_id;
  const raw =
    typeof jobId === "string" && jobId !== "" ? `gitlab-${jobId}` : `gatepass-${identity.tokenSha256.slice(0, 16)}`;
  return raw
    .replace(/[^\w+=,.@-]/g, "-")
    .slice(0, 64)
    .padEnd(2, "-");
}

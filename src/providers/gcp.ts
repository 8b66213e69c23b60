// GCP: Google STS token exchange with the minted token (workload identity federation), then IAM
// Credentials generateAccessToken / generateIdToken for the target's service account. Without a
// service account the federated token itself is the credential.

import { decodeJwt } from "jose";
import { nowSeconds } from "../deps";
import type { GcpTarget } from "../types";
import type { AccessTokenCredential, IdTokenCredential } from "./provider-credential";
import type { ProviderContext } from "./provider-context";
import type { ResolvedExchange } from "./request-checks";
import {
  callUpstream,
  checkedExpiresAt,
  checkedExpiresIn,
  formBody,
  malformed,
  parseJsonObject,
  safeCode,
} from "./upstream-call";

const CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform";

const STS_HINTS: Record<string, string> = {
  invalid_grant:
    "the workload identity provider does not accept gatepass's token; check its issuer URI (gatepass's " +
    "GATEPASS_ISSUER) and allowed audiences.",
  invalid_target:
    "the workload identity pool or provider does not exist or is disabled; check workload_identity_provider.",
  unauthorized_client:
    "the provider's attribute condition rejected the token; compare it with the claims gatepass mints.",
  invalid_request: "Google STS rejected the request (for instance a mapped google.subject over 127 bytes).",
};

const IAM_HINTS: Record<string, string> = {
  PERMISSION_DENIED:
    "the federated principal lacks roles/iam.workloadIdentityUser (or serviceAccountTokenCreator) on the service " +
    "account.",
  NOT_FOUND: "the service account does not exist; check service_account.",
  INVALID_ARGUMENT:
    "IAM Credentials refused the parameters (lifetime beyond the organisation's limit, or a bad scope or audience).",
};

export async function exchangeGcp(
  target: GcpTarget,
  minted: string,
  resolved: ResolvedExchange,
  ctx: ProviderContext,
): Promise<AccessTokenCredential | IdTokenCredential> {
  const now = nowSeconds(ctx.deps);
  const sts = await stsExchange(target, minted, target.service_account ? [CLOUD_PLATFORM] : resolved.scopes, ctx);
  if (!target.service_account) {
    return {
      kind: "access_token",
      provider: "gcp",
      target: target.name,
      accessToken: sts.accessToken,
      scopes: resolved.scopes,
      expiresAt: now + sts.expiresIn,
    };
  }
  const base = `${ctx.config.upstreams.gcpIamCredentials}/projects/-/serviceAccounts/${encodeURIComponent(target.service_account)}`;
  if (resolved.audience !== undefined) {
    const body = await callUpstream(
      iamRequest(`${base}:generateIdToken`, sts.accessToken, { audience: resolved.audience, includeEmail: true }),
      ctx,
    );
    const token = parseJsonObject(body)?.token;
    if (typeof token !== "string" || token === "") throw malformed("gcp-iam-credentials", "no token");
    // Google's ID tokens always carry exp; one without a usable exp is not trusted to expire.
    const expiresAt = checkedExpiresAt(
      "gcp-iam-credentials",
      "the ID token's exp",
      jwtExpiry(token) ?? Number.NaN,
      now,
    );
    return {
      kind: "id_token",
      provider: "gcp",
      target: target.name,
      idToken: token,
      audience: resolved.audience,
      serviceAccount: target.service_account,
      expiresAt,
    };
  }
  const lifetime = resolved.lifetimeSeconds!;
  const body = await callUpstream(
    iamRequest(`${base}:generateAccessToken`, sts.accessToken, { scope: resolved.scopes, lifetime: `${lifetime}s` }),
    ctx,
  );
  const parsed = parseJsonObject(body);
  if (typeof parsed?.accessToken !== "string" || parsed.accessToken === "" || typeof parsed.expireTime !== "string") {
    throw malformed("gcp-iam-credentials", "no accessToken/expireTime");
  }
  const expiresAt = checkedExpiresAt(
    "gcp-iam-credentials",
    "expireTime",
    Math.floor(Date.parse(parsed.expireTime) / 1000),
    now,
  );
  return {
    kind: "access_token",
    provider: "gcp",
    target: target.name,
    accessToken: parsed.accessToken,
    scopes: resolved.scopes,
    serviceAccount: target.service_account,
    expiresAt,
  };
}

async function stsExchange(
  target: GcpTarget,
  minted: string,
  scopes: string[],
  ctx: ProviderContext,
): Promise<{ accessToken: string; expiresIn: number }> {
  const body = await callUpstream(
    {
      service: "gcp-sts",
      url: ctx.config.upstreams.gcpSts,
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: formBody({
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        audience: `//iam.googleapis.com/${target.workload_identity_provider}`,
        scope: scopes.join(" "),
        requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
        subject_token: minted,
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      }),
      errorCode: (text) => safeCode(parseJsonObject(text)?.error, "unknown_error"),
      hint: (code) => STS_HINTS[code] ?? "check the workload identity provider's configuration.",
    },
    ctx,
  );
  const parsed = parseJsonObject(body);
  if (typeof parsed?.access_token !== "string" || parsed.access_token === "" || parsed.expires_in === undefined) {
    throw malformed("gcp-sts", "no access_token/expires_in");
  }
  return { accessToken: parsed.access_token, expiresIn: checkedExpiresIn("gcp-sts", "expires_in", parsed.expires_in) };
}

function iamRequest(url: string, federatedToken: string, body: object) {
  return {
    service: "gcp-iam-credentials",
    url,
    method: "POST" as const,
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      Authorization: `Bearer ${federatedToken}`,
    },
    body: JSON.stringify(body),
    errorCode: (text: string) => {
      const error = parseJsonObject(text)?.error;
      return safeCode(
        typeof error === "object" && error !== null ? (error as Record<string, unknown>).status : undefined,
        "unknown_error",
      );
    },
    hint: (code: string) => IAM_HINTS[code] ?? "check the service account and its IAM bindings.",
  };
}

/** The exp of a Google-signed ID token (read, not verified: Google signed it and we only report it). */
function jwtExpiry(token: string): number | undefined {
  try {
    const exp = decodeJwt(token).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}

// Vault: JWT auth login with the minted token → a client token and its lease.

import { isAcceptableIssuerUrl } from "../config";
import { nowSeconds } from "../deps";
import { GatepassError } from "../errors";
import { log } from "../log";
import { VAULT_MOUNT_PATTERN, VAULT_NAMESPACE_PATTERN } from "../policy/target-schema";
import type { VaultTarget } from "../types";
import type { VaultCredential } from "./provider-credential";
import type { ProviderContext } from "./provider-context";
import { callUpstream, malformed, parseJsonObject, safeCode } from "./upstream-call";

export async function exchangeVault(
  target: VaultTarget,
  minted: string,
  ctx: ProviderContext,
): Promise<VaultCredential> {
  const address = target.address.replace(/\/+$/, "");
  // Same rule as issuer URLs: https, or http on loopback in development only.
  if (
    !isAcceptableIssuerUrl(address, ctx.config.development) ||
    !VAULT_MOUNT_PATTERN.test(target.mount) ||
    (target.namespace !== undefined && !VAULT_NAMESPACE_PATTERN.test(target.namespace))
  ) {
    throw new GatepassError("internal_error", {
      cause: new Error(`target ${target.name}: bad Vault address, mount or namespace`),
    });
  }
  const now = nowSeconds(ctx.deps);
  const body = await callUpstream(
    {
      service: "vault",
      url: `${address}/v1/auth/${target.mount}/login`,
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        ...(target.namespace ? { "X-Vault-Namespace": target.namespace } : {}),
      },
      body: JSON.stringify({ role: target.role, jwt: minted }),
      // Vault has no error codes, only messages (e.g. `role "x" could not be found`); they name
      // configuration, never secrets, and are what an admin needs.
      errorCode: (text, status) => {
        const errors = parseJsonObject(text)?.errors;
        return safeCode(Array.isArray(errors) ? errors[0] : undefined, `http_${status}`);
      },
      hint: (code) =>
        // The mount's jwt_supported_algs (when set) lists the algorithms Vault verifies.
        code.includes("unexpected algorithm")
          ? `the mount's jwt_supported_algs does not include ${target.signing_alg}: add it on ` +
            `auth/${target.mount}/config.`
          : `check the Vault role ${target.role} (bound_audiences = the target's audience, bound_subject = its ` +
            `subject), that mount ${target.mount} ` +
            `trusts GATEPASS_ISSUER, and the target's namespace (${target.namespace ?? "none: the root namespace"}).`,
    },
    ctx,
  );
  const auth = parseJsonObject(body)?.auth as Record<string, unknown> | undefined;
  const lease = auth?.lease_duration;
  if (typeof auth?.client_token !== "string" || auth.client_token === "" || typeof lease !== "number") {
    throw malformed("vault", "no auth.client_token/lease_duration");
  }
  if (lease === 0) {
    // A CI credential must expire; a role that hands out non-expiring tokens is refused.
    throw new GatepassError("upstream_denied", {
      description: `Vault issued a token without TTL; set token_ttl (and token_max_ttl) on the role ${target.role}.`,
      details: { upstream_error: "no_ttl" },
    });
  }
  if (!Number.isSafeInteger(lease) || lease < 0)
    throw malformed("vault", "auth.lease_duration is not a whole number of seconds");
  if (lease > target.max_lifetime_seconds) {
    // No slack: lease_duration is the TTL Vault computed from the role (a duration, not a clock
    // reading), so there is no skew to allow for. The token is dropped here, never returned or logged.
    // It stays valid in Vault until its TTL runs out: the documented Vault API (JWT login) has no
    // revocation gatepass could call with it, so the fix is the role's token_ttl / token_max_ttl.
    log("warn", "vault_token_refused", {
      target: target.name,
      role: target.role,
      lease_seconds: lease,
      max_lifetime_seconds: target.max_lifetime_seconds,
    });
    throw new GatepassError("upstream_ttl_too_long", {
      description:
        `Vault role ${target.role} issued a token for ${lease} s, longer than target ${target.name}'s max_lifetime ` +
        `of ` +
        `${target.max_lifetime_seconds} s, so it was not handed out; set the role's token_ttl and token_max_ttl to ` +
        `at most ${target.max_lifetime_seconds}s.`,
      details: {
        upstream_error: "ttl_too_long",
        upstream_lease_seconds: lease,
        max_lifetime_seconds: target.max_lifetime_seconds,
      },
    });
  }
  const policies = Array.isArray(auth.policies) ? auth.policies.filter((p): p is string => typeof p === "string") : [];
  return {
    kind: "vault",
    provider: "vault",
    target: target.name,
    clientToken: auth.client_token,
    address,
    ...(target.namespace ? { namespace: target.namespace } : {}),
    leaseDurationSeconds: lease,
    renewable: auth.renewable === true,
    policies,
    expiresAt: now + lease,
  };
}

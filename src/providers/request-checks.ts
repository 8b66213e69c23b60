// Checks a caller's request (lifetime, scopes, audience) against the target before anything is
// minted or sent upstream. Anything beyond the target's limits is refused with invalid_scope, never
// silently narrowed or widened; parameters a cloud cannot honour are refused the same way.

import { GatepassError } from "../errors";
import {
  AWS_MAX_DURATION_SECONDS,
  AWS_MIN_DURATION_SECONDS,
  DEFAULT_CREDENTIAL_LIFETIME_SECONDS,
  GCP_MAX_ACCESS_TOKEN_LIFETIME_SECONDS,
  MINTED_TOKEN_DEFAULT_LIFETIME_SECONDS,
  MINTED_TOKEN_MAX_LIFETIME_SECONDS,
} from "../limits";
import type { AwsTarget, GcpTarget, Target } from "../types";
import type { ExchangeRequest } from "./provider-credential";

/** What a provider will ask for, fully decided. */
export interface ResolvedExchange {
  /** Lifetime of the minted token (for oidc targets: of the credential itself). */
  mintLifetimeSeconds: number;
  /** gcp: scopes; azure: the one scope. */
  scopes: string[];
  /** gcp with a service account, aws: credential lifetime. */
  lifetimeSeconds?: number;
  /** gcp: ID token audience. */
  audience?: string;
}

export function resolveExchange(target: Target, request: ExchangeRequest): ResolvedExchange {
  const exchangeMint = Math.min(MINTED_TOKEN_DEFAULT_LIFETIME_SECONDS, target.max_lifetime_seconds);
  switch (target.type) {
    case "gcp":
      return resolveGcp(target, request, exchangeMint);
    case "aws":
      refuseUnless(request.scopes === undefined, "aws targets take no scope; the role's policies decide.");
      refuseUnless(request.audience === undefined, "aws targets take no audience.");
      return {
        mintLifetimeSeconds: exchangeMint,
        scopes: [],
        lifetimeSeconds: awsDuration(target, request.lifetimeSeconds),
      };
    case "azure":
      refuseUnless(
        request.lifetimeSeconds === undefined,
        "Entra ID decides the token lifetime; azure targets take no lifetime.",
      );
      refuseUnless(request.audience === undefined, "azure targets take no audience.");
      refuseUnless(
        request.scopes === undefined || (request.scopes.length === 1 && request.scopes[0] === target.scope),
        `target ${target.name} allows only the scope ${target.scope}.`,
      );
      return { mintLifetimeSeconds: exchangeMint, scopes: [target.scope] };
    case "vault":
      refuseUnless(
        request.lifetimeSeconds === undefined,
        "The Vault role decides the token TTL; vault targets take no lifetime.",
      );
      refuseUnless(
        request.scopes === undefined && request.audience === undefined,
        "vault targets take no scope or audience.",
      );
      return { mintLifetimeSeconds: exchangeMint, scopes: [] };
    case "oidc": {
      refuseUnless(request.scopes === undefined, "oidc targets take no scope.");
      refuseUnless(
        request.audience === undefined || request.audience === target.audience,
        `target ${target.name} mints tokens only for the audience ${target.audience}.`,
      );
      const max = Math.min(target.max_lifetime_seconds, MINTED_TOKEN_MAX_LIFETIME_SECONDS);
      return { mintLifetimeSeconds: lifetimeWithin(request.lifetimeSeconds, exchangeMint, max, 1), scopes: [] };
    }
  }
}

function resolveGcp(target: GcpTarget, request: ExchangeRequest, mintLifetimeSeconds: number): ResolvedExchange {
  const scopes = request.scopes ?? target.scopes.slice(0, 1);
  const outside = scopes.filter((scope) => !target.scopes.includes(scope));
  refuseUnless(scopes.length > 0, "Ask for at least one scope.");
  refuseUnless(outside.length === 0, `target ${target.name} does not allow the scope(s) ${outside.join(" ")}.`);
  if (!target.service_account) {
    // The federated token's lifetime is fixed by Google STS (1 h); a shorter one cannot be honoured.
    refuseUnless(
      request.lifetimeSeconds === undefined,
      `target ${target.name} has no service account; its lifetime is fixed by Google STS.`,
    );
    refuseUnless(request.audience === undefined, `target ${target.name} has no service account; ID tokens need one.`);
    return { mintLifetimeSeconds, scopes };
  }
  if (request.audience !== undefined) {
    // A Google-signed ID token for the service account is accepted by whatever service trusts that
    // audience, whatever the target's scopes: only the audiences the target lists, compared exactly.
    const allowed = target.id_token_audiences ?? [];
    refuseUnless(
      allowed.includes(request.audience),
      allowed.length === 0
        ? `target ${target.name} issues no ID tokens; list the audience under id_token_audiences in the policy.`
        : `target ${target.name} issues ID tokens only for the audience(s) ${allowed.join(" ")}.`,
    );
    refuseUnless(
      request.lifetimeSeconds === undefined,
      "Google ID tokens have a fixed lifetime of 1 h; drop lifetime.",
    );
    refuseUnless(request.scopes === undefined, "ID tokens take an audience, not scopes.");
    return { mintLifetimeSeconds, scopes: [], audience: request.audience };
  }
  const max = Math.min(target.max_lifetime_seconds, GCP_MAX_ACCESS_TOKEN_LIFETIME_SECONDS);
  return {
    mintLifetimeSeconds,
    scopes,
    lifetimeSeconds: lifetimeWithin(request.lifetimeSeconds, DEFAULT_CREDENTIAL_LIFETIME_SECONDS, max, 1),
  };
}

function awsDuration(target: AwsTarget, requested: number | undefined): number {
  const max = Math.min(target.max_lifetime_seconds, AWS_MAX_DURATION_SECONDS);
  refuseUnless(
    max >= AWS_MIN_DURATION_SECONDS,
    `target ${target.name} allows less than AWS's minimum session of ${AWS_MIN_DURATION_SECONDS} s.`,
  );
  return lifetimeWithin(requested, DEFAULT_CREDENTIAL_LIFETIME_SECONDS, max, AWS_MIN_DURATION_SECONDS);
}

/** The requested lifetime if within [min, max]; otherwise invalid_scope. Default: min(default, max). */
function lifetimeWithin(requested: number | undefined, fallback: number, max: number, min: number): number {
  if (requested === undefined) return Math.max(min, Math.min(fallback, max));
  refuseUnless(requested <= max, `The requested lifetime of ${requested} s exceeds this target's maximum of ${max} s.`);
  refuseUnless(requested >= min, `The requested lifetime of ${requested} s is below the minimum of ${min} s.`);
  return requested;
}

function refuseUnless(condition: boolean, description: string): asserts condition {
  if (!condition) throw new GatepassError("invalid_scope", { description });
}

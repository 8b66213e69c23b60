// Dispatch by target type: the minted token goes to the target's cloud, a Credential comes back,
// with the upstream time spent measured for audit.

import type { Config } from "../config";
import type { Deps } from "../deps";
import type { MintedToken } from "../mint/minted-token";
import type { Target, VerifiedIdentity } from "../types";
import { exchangeAws } from "./aws";
import { exchangeAzure } from "./azure";
import type { Credential } from "./provider-credential";
import { exchangeGcp } from "./gcp";
import { oidcCredential } from "./oidc";
import type { ResolvedExchange } from "./request-checks";
import type { ProviderContext } from "./provider-context";
import { DEFAULT_RETRY_POLICY, UpstreamTimer, type RetryPolicy } from "./upstream-call";
import { exchangeVault } from "./vault";

export interface ExchangeResult {
  credential: Credential;
  /** Milliseconds spent waiting on upstreams (0 for oidc targets). */
  upstreamMs: number;
}

export async function exchange(
  target: Target,
  minted: MintedToken,
  resolved: ResolvedExchange,
  identity: VerifiedIdentity,
  ctx: { deps: Deps; config: Config; retry?: RetryPolicy; timer?: UpstreamTimer },
): Promise<ExchangeResult> {
  const timer = ctx.timer ?? new UpstreamTimer();
  const pctx: ProviderContext = { deps: ctx.deps, config: ctx.config, retry: ctx.retry ?? DEFAULT_RETRY_POLICY, timer };
  const credential = await dispatch(target, minted, resolved, identity, pctx);
  return { credential, upstreamMs: timer.ms };
}

function dispatch(
  target: Target,
  minted: MintedToken,
  resolved: ResolvedExchange,
  identity: VerifiedIdentity,
  ctx: ProviderContext,
): Promise<Credential> {
  switch (target.type) {
    case "gcp":
      return exchangeGcp(target, minted.token, resolved, ctx);
    case "aws":
      return exchangeAws(target, minted.token, resolved, identity, ctx);
    case "azure":
      return exchangeAzure(target, minted.token, resolved, ctx);
    case "vault":
      return exchangeVault(target, minted.token, ctx);
    case "oidc":
      return Promise.resolve(oidcCredential(target, minted));
  }
}

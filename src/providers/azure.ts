// Azure: Entra ID client-credentials grant with the minted token as a federated client assertion.

import { nowSeconds } from "../deps";
import type { AzureTarget } from "../types";
import type { AccessTokenCredential } from "./provider-credential";
import type { ProviderContext } from "./provider-context";
import type { ResolvedExchange } from "./request-checks";
import { callUpstream, checkedExpiresIn, formBody, malformed, parseJsonObject, safeCode } from "./upstream-call";

const HINTS: Record<string, string> = {
  AADSTS700213:
    "no federated credential matches; add one to the app with issuer = GATEPASS_ISSUER and subject = the target's " +
    "subject (exact match).",
  AADSTS700211: "no federated credential has gatepass's issuer; its issuer must equal GATEPASS_ISSUER exactly.",
  AADSTS700212:
    "the federated credential's audience does not match the target's audience (normally api://AzureADTokenExchange).",
  AADSTS700016: "the application (client_id) was not found in the tenant.",
  AADSTS90002: "the tenant was not found; check tenant_id.",
  // Only a snapshot pushed before azure targets were always signed RS256 can still sign ES256.
  AADSTS5002738:
    "Entra ID accepts only RS256 assertions: push the policies again with the current gatepass CLI, which signs " +
    "azure targets RS256.",
  invalid_scope: "the scope is not valid for this resource; it must be <resource>/.default.",
};

export async function exchangeAzure(
  target: AzureTarget,
  minted: string,
  resolved: ResolvedExchange,
  ctx: ProviderContext,
): Promise<AccessTokenCredential> {
  const now = nowSeconds(ctx.deps);
  const body = await callUpstream(
    {
      service: "azure-entra",
      url: ctx.config.upstreams.azureToken.replace("{tenant}", encodeURIComponent(target.tenant_id)),
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: formBody({
        grant_type: "client_credentials",
        client_id: target.client_id,
        scope: resolved.scopes.join(" "),
        client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion: minted,
      }),
      errorCode: entraErrorCode,
      hint: (code) => HINTS[code] ?? "check the app registration's federated credentials.",
    },
    ctx,
  );
  const parsed = parseJsonObject(body);
  if (typeof parsed?.access_token !== "string" || parsed.access_token === "" || parsed.expires_in === undefined) {
    throw malformed("azure-entra", "no access_token/expires_in");
  }
  // Entra (and the older v1 endpoint) may send expires_in as a string of digits; nothing else is read as a number.
  const raw = parsed.expires_in;
  const expiresIn = checkedExpiresIn(
    "azure-entra",
    "expires_in",
    typeof raw === "string" && /^[0-9]{1,15}$/.test(raw) ? Number(raw) : raw,
  );
  return {
    kind: "access_token",
    provider: "azure",
    target: target.name,
    accessToken: parsed.access_token,
    scopes: resolved.scopes,
    expiresAt: now + expiresIn,
  };
}

/** Entra's specific AADSTS code when present (it says far more than the OAuth `error`). */
function entraErrorCode(text: string): string {
  const parsed = parseJsonObject(text);
  const codes = parsed?.error_codes;
  if (Array.isArray(codes) && typeof codes[0] === "number") return `AADSTS${codes[0]}`;
  const described =
    typeof parsed?.error_description === "string" ? /AADSTS\d{1,9}/.exec(parsed.error_description) : null;
  return described ? described[0] : safeCode(parsed?.error, "unknown_error");
}

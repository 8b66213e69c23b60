// GET /v1/whoami: the verified, normalised identity of the calling CI job — what policies match on.

import { Hono } from "hono";
import type { AppEnv } from "../app";
import type { VerifiedIdentity } from "../types";
import { identifyCaller } from "./identify";

export function whoamiBody(identity: VerifiedIdentity) {
  return {
    issuer: identity.issuer,
    issuer_url: identity.issuerUrl,
    claims: identity.claims,
    token_sha256: identity.tokenSha256,
    issued_at: identity.issuedAt,
    expires_at: identity.expiresAt,
  };
}

export const whoamiRoutes = new Hono<AppEnv>().get("/v1/whoami", async (c) => {
  const { identity } = await identifyCaller(c);
  return c.json(whoamiBody(identity), 200, { "Cache-Control": "no-store" });
});

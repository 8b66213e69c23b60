// gatepass as an OpenID Provider: discovery and JWKS documents for relying parties (clouds, Vault).

import { Hono } from "hono";
import type { AppEnv } from "../http/app-env";
import { readConfig } from "../config";
import { nowSeconds } from "../deps";
import {
  DISCOVERY_PATH,
  discoveryDocument,
  ISSUER_DOCUMENT_CACHE_CONTROL,
  JWKS_PATH,
  jwksDocument,
} from "../mint/issuer-metadata";

export const discoveryRoutes = new Hono<AppEnv>();

discoveryRoutes.get(DISCOVERY_PATH, async (c) => {
  const config = readConfig(c.env);
  const keys = await c.get("services").signer.keyRing(config);
  return c.json(discoveryDocument(config.issuerUrl, keys), 200, { "Cache-Control": ISSUER_DOCUMENT_CACHE_CONTROL });
});

discoveryRoutes.get(JWKS_PATH, async (c) => {
  const { signer, deps } = c.get("services");
  const keys = await signer.keyRing(readConfig(c.env));
  return c.json(jwksDocument(keys, nowSeconds(deps)), 200, {
    "Cache-Control": ISSUER_DOCUMENT_CACHE_CONTROL,
    "Content-Type": "application/jwk-set+json",
  });
});

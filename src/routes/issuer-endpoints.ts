// gatepass as a token issuer: its OpenID Provider documents and every credential endpoint
// (/v1/credentials, /v1/token, /v1/sts/token, the Sapro-compatible /access).

import { Hono } from "hono";
import type { AppEnv } from "../http/app-env";
import { credentialsRoutes } from "./credentials-endpoint";
import { discoveryRoutes } from "./discovery-endpoints";
import { saproRoutes } from "./sapro-endpoint";
import { stsRoutes } from "./google-sts-endpoint";
import { tokenRoutes } from "./token-exchange-endpoint";

export const exchangeRoutes = new Hono<AppEnv>()
  .route("/", discoveryRoutes)
  .route("/", credentialsRoutes)
  .route("/", tokenRoutes)
  .route("/", stsRoutes)
  .route("/", saproRoutes);

// Everything issue 4 serves: gatepass's issuer documents and its credential endpoints.

import { Hono } from "hono";
import type { AppEnv } from "../app";
import { credentialsRoutes } from "./credentials";
import { discoveryRoutes } from "./discovery";
import { saproRoutes } from "./sapro";
import { stsRoutes } from "./sts";
import { tokenRoutes } from "./token";

export const exchangeRoutes = new Hono<AppEnv>()
  .route("/", discoveryRoutes)
  .route("/", credentialsRoutes)
  .route("/", tokenRoutes)
  .route("/", stsRoutes)
  .route("/", saproRoutes);

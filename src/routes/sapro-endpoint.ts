// GET /access?sa=EMAIL&scopes=a,b&lifetime=MINUTES with header `Gitlab-Token` — compatibility with
// Sapro (GoogleCloudPlatform professional-services service-account-provider): the access token as
// text/plain. The service account names no target; policy decides which gcp target holding that
// service account this job may use.

import { Hono } from "hono";
import type { AppEnv } from "../http/app-env";
import { GatepassError } from "../errors";
import { evaluate } from "../policy/evaluate";
import type { GcpTarget } from "../types";
import { authorizeCaller, issue, NO_STORE } from "../exchange/exchange-flow";
import { identifyCaller } from "../exchange/identify-job";
import { bearerToken } from "../http/bearer-token";
import { invalid, readParams } from "../http/request-params";
import { enforceRateLimit } from "../exchange/request-rate-limit";

const PARAMS = ["sa", "scopes", "lifetime"] as const;
const EMAIL = /^[a-z0-9][a-z0-9._-]{0,99}@[a-z0-9][a-z0-9.-]{0,199}$/;

export const saproRoutes = new Hono<AppEnv>();

saproRoutes.get("/access", async (c) => {
  const params = await readParams(c, PARAMS);
  const sa = (params.sa ?? "").toLowerCase();
  if (!EMAIL.test(sa)) throw invalid("sa must be a service account email.");
  const scopes = params.scopes === undefined ? undefined : params.scopes.split(",").map(expandScope);
  const lifetimeSeconds = parseMinutes(params.lifetime);
  const token = bearerToken(c.req.header("Gitlab-Token") ? `Bearer ${c.req.header("Gitlab-Token")}` : undefined);

  const caller = await identifyCaller(c, token);
  await enforceRateLimit(c.env, caller.identity);
  const candidates = [...caller.policy.targets.values()]
    .filter((t): t is GcpTarget => t.type === "gcp" && t.service_account?.toLowerCase() === sa)
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const allowed = candidates.find((t) => evaluate(caller.policy, caller.identity, t.name).allowed);
  if (!allowed) {
    const project = caller.identity.claims.project_path;
    throw new GatepassError("policy_denied", {
      description:
        `No policy rule lets ${typeof project === "string" ? project : "this job"} use the service ` + `account ${sa}.`,
    });
  }
  const issued = await issue(c, authorizeCaller(c, caller, allowed.name), { scopes, lifetimeSeconds });
  if (issued.credential.kind !== "access_token") throw new GatepassError("internal_error");
  return c.text(issued.credential.accessToken, 200, NO_STORE);
});

/** Sapro accepts bare scope names (`cloud-platform`) as well as full URLs. */
function expandScope(scope: string): string {
  const trimmed = scope.trim();
  if (!/^[\x21-\x7e]{1,256}$/.test(trimmed)) throw invalid("scopes must be a comma-separated list of scopes.");
  return /^[a-z0-9._-]+$/i.test(trimmed) ? `https://www.googleapis.com/auth/${trimmed}` : trimmed;
}

function parseMinutes(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]{0,3}$/.test(value)) throw invalid("lifetime is a number of minutes.");
  return Number(value) * 60;
}

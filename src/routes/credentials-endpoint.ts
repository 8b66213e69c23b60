// POST /v1/credentials/:target — the one-curl endpoint: CI token in, the target's credential out,
// in the format the job wants (json | env | dotenv | credential_process | gcloud).

import { Hono } from "hono";
import type { AppEnv } from "../http/app-env";
import { readConfig } from "../config";
import { GatepassError } from "../errors";
import { checkTokenFile, gcloudConfig } from "../format/gcloud-config";
import { assertFormatFor, parseFormat, renderCredential } from "../format/format-credential";
import { NAME_PATTERN as TARGET_NAME } from "../policy/schema-patterns";
import { authorize, issue, NO_STORE } from "../exchange/exchange-flow";
import { parseLifetime, parsePrintable, parseScopes, readParams } from "../http/request-params";

const PARAMS = ["lifetime", "scope", "audience", "format", "token_file"] as const;

export const credentialsRoutes = new Hono<AppEnv>();

credentialsRoutes.post("/v1/credentials/:target", async (c) => {
  const targetName = c.req.param("target");
  if (!TARGET_NAME.test(targetName)) throw new GatepassError("target_unknown");
  const params = await readParams(c, PARAMS);
  const format = parseFormat(params.format);
  const request = {
    lifetimeSeconds: parseLifetime(params.lifetime),
    scopes: parseScopes(params.scope),
    audience: parsePrintable("audience", params.audience),
  };
  const tokenFile = parsePrintable("token_file", params.token_file);
  if (tokenFile !== undefined && format !== "gcloud")
    throw new GatepassError("request_invalid", { description: "token_file is only used with format=gcloud." });
  if (tokenFile !== undefined) checkTokenFile(tokenFile); // a relative path is refused before the token is looked at

  const authorized = await authorize(c, targetName);
  assertFormatFor(authorized.target.type, format);

  if (format === "gcloud") {
    // assertFormatFor admits gcloud for gcp targets only; this narrows the type and fails closed.
    if (authorized.target.type !== "gcp") throw new GatepassError("format_unsupported");
    // The config only points Google's tools at gatepass: nothing is minted until they call the STS endpoint.
    if (request.lifetimeSeconds !== undefined || request.scopes !== undefined || request.audience !== undefined) {
      throw new GatepassError("request_invalid", {
        description: "format=gcloud takes no lifetime, scope or audience; Google's tools ask for those themselves.",
      });
    }
    const config = gcloudConfig(readConfig(c.env).issuerUrl, authorized.target, checkTokenFile(tokenFile));
    return c.json(config, 200, NO_STORE);
  }
  const issued = await issue(c, authorized, request);
  const rendered = renderCredential(issued.credential, format, issued.now);
  return c.body(rendered.body, 200, { ...NO_STORE, "Content-Type": rendered.contentType });
});

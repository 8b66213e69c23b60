// The HTTP surface: routes wired to the flow (parse → verify → decide → mint → provider → format),
// one error handler that turns every failure into a stable wire error.

import { Hono, type MiddlewareHandler } from "hono";
import { logConfigRefusal, readConfig } from "./config";
import { defaultDeps, type Deps } from "./deps";
import { GatepassError, isGatepassError } from "./errors";
import { errorResponse, recordError } from "./http/error-response";
import { log } from "./log";
import { requestContext } from "./http/request-context";
import { templateRoutes } from "./routes/template-endpoints";
import { adminRoutes } from "./routes/admin-endpoints";
import { exchangeRoutes } from "./routes/issuer-endpoints";
import { whoamiRoutes } from "./routes/whoami-endpoint";
import type { AppEnv } from "./http/app-env";
import { createServices, type Services } from "./services";

export function createApp(deps: Deps = defaultDeps, services: Services = createServices(deps)): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use("*", requestContext(services));
  // Nothing is served on a bad configuration, /healthz included, so a deploy's first check shows it
  // (config_invalid). Parsed once per isolate.
  app.use("*", async (c, next) => {
    readConfig(c.env);
    await next();
  });

  for (const path of CREDENTIAL_GET_PATHS) app.use(path, refuseHead);

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.route("/", templateRoutes);
  app.route("/", whoamiRoutes);
  app.route("/", adminRoutes);
  app.route("/", exchangeRoutes);
  answerOtherMethods(app);

  app.notFound((c) => {
    c.set("errorCode", "not_found");
    return errorResponse(c.get("requestId") ?? "", new GatepassError("not_found"));
  });
  app.onError((err, c) => {
    const error = toGatepassError(err);
    recordError(c, error);
    if (error.code === "internal_error")
      log("error", "unhandled_error", { request_id: c.get("requestId"), error: err });
    if (error.code === "config_invalid") logConfigRefusal(error, { request_id: c.get("requestId") });
    return errorResponse(c.get("requestId") ?? "", error);
  });

  return app;
}

/**
 * GET routes that mint or exchange a credential. Hono answers HEAD with the GET handler and drops the
 * body, so a HEAD there would run the whole exchange (and count a max_uses_per_job use) only to throw
 * the credential away: HEAD is refused there (405, Allow: GET). Every other GET route only reads.
 */
export const CREDENTIAL_GET_PATHS: ReadonlySet<string> = new Set(["/access"]);

const refuseHead: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "HEAD") throw new GatepassError("method_not_allowed", { headers: { Allow: "GET" } });
  await next();
};

/**
 * A known path asked with a method it does not serve gets 405 method_not_allowed with `Allow`, not a
 * 404 that would send the caller looking for a typo in the path. Registered after every route, so
 * it only runs when no route answered.
 */
function answerOtherMethods(app: Hono<AppEnv>): void {
  const methodsByPath = new Map<string, Set<string>>();
  for (const { method, path } of app.routes) {
    if (method === "ALL") continue; // middleware
    const methods = methodsByPath.get(path) ?? new Set<string>();
    methods.add(method);
    if (method === "GET" && !CREDENTIAL_GET_PATHS.has(path)) methods.add("HEAD"); // Hono answers HEAD with the GET route
    methodsByPath.set(path, methods);
  }
  for (const [path, methods] of methodsByPath) {
    const allow = [...methods].join(", ");
    app.all(path, () => {
      throw new GatepassError("method_not_allowed", { headers: { Allow: allow } });
    });
  }
}

function toGatepassError(err: unknown): GatepassError {
  if (isGatepassError(err)) return err;
  return new GatepassError("internal_error", { cause: err });
}

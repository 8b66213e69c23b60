// Serves the GitLab CI/CD component (templates/gatepass.yml) at a stable URL for `include: remote:`
// with `inputs:`; /templates/gitlab-ci.yml is the URL pipelines have included since before it took inputs.
import { Hono } from "hono";
import template from "../../templates/gatepass.yml";
import type { AppEnv } from "../http/app-env";

export const templateRoutes = new Hono<AppEnv>().get("/templates/gitlab-ci.yml", (c) =>
  c.body(template, 200, { "Content-Type": "text/yaml; charset=utf-8", "Cache-Control": "public, max-age=300" }),
);

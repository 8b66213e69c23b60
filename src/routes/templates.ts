// Serves the GitLab CI template at a stable URL for `include: remote:`.
import { Hono } from "hono";
import template from "../../templates/gitlab-ci.yml";
import type { AppEnv } from "../app";

export const templateRoutes = new Hono<AppEnv>().get("/templates/gitlab-ci.yml", (c) =>
  c.body(template, 200, { "Content-Type": "text/yaml; charset=utf-8", "Cache-Control": "public, max-age=300" }),
);

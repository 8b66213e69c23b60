// Which capability opens which admin route to a CI ID token (ci-caller.ts). A route not listed here
// takes the admin token only.

import type { Capability } from "../policy/capabilities";

const ROUTES: readonly { method: string; path: RegExp; capability: Capability }[] = [
  { method: "GET", path: /^\/v1\/admin\/status$/, capability: "gatepass:status-read" },
  { method: "GET", path: /^\/v1\/admin\/audit$/, capability: "gatepass:audit-read" },
  {
    method: "GET",
    path: /^\/v1\/admin\/policies\/(active|history|versions\/[^/]+)$/,
    capability: "gatepass:policies-plan",
  },
  { method: "GET", path: /^\/v1\/admin\/seen-identities$/, capability: "gatepass:policies-plan" },
  { method: "PUT", path: /^\/v1\/admin\/policies$/, capability: "gatepass:policies-push" },
  { method: "POST", path: /^\/v1\/admin\/policies\/rollback$/, capability: "gatepass:policies-push" },
];

export function capabilityOfRoute(method: string, path: string): Capability | undefined {
  // HEAD is answered by the GET route, so it needs what GET needs.
  const asked = method === "HEAD" ? "GET" : method;
  return ROUTES.find((route) => route.method === asked && route.path.test(path))?.capability;
}

import { SELF, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import component from "../../templates/gatepass.yml";

describe("GET /healthz", () => {
  it("answers ok with a request id", async () => {
    const res = await SELF.fetch("https://gatepass.test/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    expect(res.headers.get("X-Request-Id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("answers unknown paths with a stable not_found error", async () => {
    const res = await SELF.fetch("https://gatepass.test/nope");
    expect(res.status).toBe(404);
    const body = (await res.json()) as Record<string, string>;
    expect(body.code).toBe("not_found");
    expect(body.request_id).toBe(res.headers.get("X-Request-Id"));
  });

  it("answers a known path asked with another method with method_not_allowed and Allow", async () => {
    for (const [method, path, allow] of [
      ["GET", "/v1/credentials/gcp-deployer", "POST"],
      ["DELETE", "/v1/whoami", "GET, HEAD"],
      ["POST", "/healthz", "GET, HEAD"],
      ["PUT", "/v1/token", "POST"],
    ] as const) {
      const res = await SELF.fetch(`https://gatepass.test${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get("Allow")).toBe(allow);
      expect(((await res.json()) as Record<string, string>).code).toBe("method_not_allowed");
    }
    // HEAD is answered by the GET route, not refused.
    expect((await SELF.fetch("https://gatepass.test/healthz", { method: "HEAD" })).status).toBe(200);
  });

  it("reaches the loopback stand-ins and real D1", async () => {
    const res = await fetch(`${env.STANDIN_URL}/ping`);
    expect(await res.text()).toBe("pong");
    const row = await env.DB.prepare("SELECT count(*) AS n FROM policy_versions").first<{ n: number }>();
    expect(row?.n).toBe(0);
  });
});

describe("GET /templates/gitlab-ci.yml", () => {
  it("serves the GitLab CI/CD component for include: remote: with inputs:", async () => {
    const res = await SELF.fetch("https://gatepass.test/templates/gitlab-ci.yml");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toContain("text/yaml");
    const text = await res.text();
    // The CI/CD component itself (templates/gatepass.yml): `include: remote:` takes its inputs.
    expect(text).toBe(component);
    expect(text).toMatch(/^spec:\n {2}inputs:\n {4}url:\n/m);
    expect(text).toContain(".$[[ inputs.name ]]-aws:");
  });
});

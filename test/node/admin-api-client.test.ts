// The CLI's admin API client (--url): where the job's ID token may go, and where it is read from.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi, AdminApiError, adminBaseUrl } from "../../cli/policy/admin-api";
import { gatepassInProcess } from "../support/cli";

const seen: { server: string; authorization: string | undefined }[] = [];
let redirecting: Server;
let elsewhere: Server;
const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

beforeAll(async () => {
  elsewhere = createServer((req: IncomingMessage, res) => {
    seen.push({ server: "elsewhere", authorization: req.headers.authorization });
    res.writeHead(200, { "Content-Type": "application/json" }).end('{"versions":[]}');
  });
  await new Promise<void>((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
  redirecting = createServer((req, res) => {
    seen.push({ server: "gatepass", authorization: req.headers.authorization });
    if (req.url?.startsWith("/v1/admin/policies/history"))
      return void res.writeHead(302, { Location: `${urlOf(elsewhere)}/v1/admin/policies/history` }).end();
    res.writeHead(403, { "Content-Type": "application/json" }).end(
      JSON.stringify({
        code: "admin_forbidden",
        error_description: "No policy rule grants gatepass:policies-push to this job.",
      }),
    );
  });
  await new Promise<void>((resolve) => redirecting.listen(0, "127.0.0.1", resolve));
});

afterAll(async () => {
  for (const server of [redirecting, elsewhere]) await new Promise((resolve) => server.close(resolve));
});

describe("policies --url", () => {
  it("takes https URLs, and http only on loopback, without credentials, query or fragment", () => {
    expect(adminBaseUrl("https://gatepass.example.com/")).toBe("https://gatepass.example.com");
    expect(adminBaseUrl("http://127.0.0.1:8787")).toBe("http://127.0.0.1:8787");
    for (const bad of [
      "http://gatepass.example.com",
      "https://user:pw@gatepass.example.com",
      "https://gatepass.example.com/?x=1",
      "https://gatepass.example.com/#f",
      "ftp://x",
      "gatepass.example.com",
    ]) {
      expect(() => adminBaseUrl(bad), bad).toThrow(/--url/);
    }
  });

  it("reads the ID token from GATEPASS_ID_TOKEN only, and has no flag for it", async () => {
    expect(() => AdminApi.fromEnvironment("https://gatepass.example.com", {})).toThrow(/GATEPASS_ID_TOKEN/);
    const flag = await gatepassInProcess(
      "policies",
      "history",
      "--url",
      "https://gatepass.example.com",
      "--token",
      "eyJ.x.y",
    );
    expect(flag.code).toBe(2);
  });

  it("sends the token to --url only: a redirect elsewhere is not followed", async () => {
    const api = new AdminApi(urlOf(redirecting), "the-job-token");
    await expect(api.history(10)).rejects.toThrow();
    expect(seen.filter((s) => s.server === "elsewhere")).toEqual([]);
    expect(seen.at(-1)).toEqual({ server: "gatepass", authorization: "Bearer the-job-token" });
  });

  it("reports gatepass's refusal with its code and sentence", async () => {
    const api = new AdminApi(urlOf(redirecting), "the-job-token");
    const refusal = await api.push({ snapshot: "{}", tests: [], force: false, wait: 0 }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(AdminApiError);
    expect(refusal).toMatchObject({
      status: 403,
      code: "admin_forbidden",
      message: expect.stringMatching(/gatepass:policies-push/),
    });
  });
});

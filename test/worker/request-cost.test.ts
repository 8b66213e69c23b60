// What every request pays, however cheap its answer (issue 30: /healthz and a junk token's refusal
// under a flood). No timings here: the bench measures those (`npm run bench -- refusal-cost`); these
// tests pin down the work that made them cost more than they had to.
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { log } from "../../src/log";
import { bearer, createHarness, type Harness } from "./exchange/app-harness";

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
  await h.scenario();
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** Counts the Response objects JavaScript builds (Hono's and gatepass's own) while `send` runs. */
async function responsesBuiltBy(send: () => Promise<Response>): Promise<{ res: Response; built: number }> {
  const Original = globalThis.Response;
  let built = 0;
  globalThis.Response = class extends Original {
    constructor(...args: ConstructorParameters<typeof Response>) {
      super(...args);
      built++;
    }
  } as typeof Response;
  try {
    return { res: await send(), built };
  } finally {
    globalThis.Response = Original;
  }
}

describe("per-request cost", () => {
  it("/healthz builds one Response, with its request id in it", async () => {
    const { res, built } = await responsesBuiltBy(() => h.request("/healthz"));
    expect(res.status).toBe(200);
    expect(res.headers.get("X-Request-Id")).toMatch(/^[0-9a-f-]{36}$/);
    // Setting X-Request-Id after the route answered made Hono copy the finished response into a second one.
    expect(built).toBe(1);
  });

  it("a junk token's refusal builds one Response, its request id the one in the body", async () => {
    const { res, built } = await responsesBuiltBy(() =>
      h.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer("junk-token") }),
    );
    expect(res.status).toBe(401);
    const body = (await res.json()) as Record<string, string>;
    expect(body.code).toBe("token_malformed");
    expect(res.headers.get("X-Request-Id")).toBe(body.request_id);
    expect(built).toBe(1);
  });

  it("a request's log line is serialized without a replacer, and keeps its fields", async () => {
    h.takeLogs();
    const stringify = vi.spyOn(JSON, "stringify");
    await h.request("/healthz");
    const call = stringify.mock.calls.find(([value]) => (value as { event?: string } | undefined)?.event === "request");
    expect(call).toBeDefined();
    // A replacer is called for every key and takes JSON.stringify off V8's fast path.
    expect(call![1]).toBeUndefined();
    const line = JSON.parse(h.takeLogs().trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: "info", event: "request", method: "GET", path: "/healthz", status: 200 });
    expect(Object.keys(line)).toEqual([
      "level",
      "event",
      "time",
      "request_id",
      "method",
      "path",
      "status",
      "duration_ms",
    ]);
  });

  it("an Error in a log line's fields still goes out as its name and message", () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    log("error", "unhandled_error", {
      request_id: "r",
      error: new TypeError("boom"),
      nested: { cause: new Error("inner") },
    });
    expect(JSON.parse(error.mock.calls[0]![0] as string)).toMatchObject({
      event: "unhandled_error",
      error: { name: "TypeError", message: "boom" },
      nested: { cause: { name: "Error", message: "inner" } },
    });
  });
});

import { describe, expect, it, vi } from "vitest";
import { callUpstream, safeCode, UpstreamTimer, type UpstreamRequest } from "../../../src/providers/upstream-call";
import { capturedRequests, deps, failure, FAST_RETRY, newNamespace, setScenario, upstreamBase } from "./fixtures";
import type { Fault } from "../../support/standins/upstreams";

const ERROR_JSON = (code: string) =>
  JSON.stringify({ error: code, error_description: "raw upstream text that must not leak" });

async function scenario(faults: Fault[]) {
  const ns = newNamespace();
  // The vault stand-in answers 400 `role "" could not be found` once the faults are used up.
  await setScenario(ns, { trust: { issuer: "https://unused.example" }, faults: { vault: faults } });
  const request: UpstreamRequest = {
    service: "test-upstream",
    url: `${upstreamBase(ns)}/vault/v1/auth/m/login`,
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
    errorCode: (text, status) => {
      try {
        return String((JSON.parse(text) as { error?: string }).error ?? `http_${status}`);
      } catch {
        return `http_${status}`;
      }
    },
    hint: (code) => `hint for ${code}.`,
  };
  return { ns, request };
}

const ok = { status: 200, body: '{"fine":true}' };

describe("callUpstream", () => {
  it("retries 5xx and 429, then succeeds", async () => {
    const { ns, request } = await scenario([
      { status: 503, body: "busy" },
      { status: 429, body: ERROR_JSON("rate") },
      ok,
    ]);
    expect(await callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() })).toBe(
      '{"fine":true}',
    );
    expect(await capturedRequests(ns)).toHaveLength(3);
  });

  it("adds the time spent waiting on the upstream to the exchange's timer", async () => {
    const { request } = await scenario([{ delayMs: 60 }]);
    const timer = new UpstreamTimer();
    timer.ms = 1000; // an earlier call of the same exchange
    await failure(callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer }));
    expect(timer.ms).toBeGreaterThanOrEqual(1050);
  });

  it("gives up after the maximum attempts with upstream_unavailable and the upstream's own code", async () => {
    const { ns, request } = await scenario([1, 2, 3].map(() => ({ status: 500, body: ERROR_JSON("backend_error") })));
    const err = await failure(callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() }));
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details).toEqual({ upstream_error: "backend_error", upstream_status: 500 });
    expect(err.description).not.toContain("raw upstream text");
    expect(await capturedRequests(ns)).toHaveLength(3);
  });

  it("does not retry a 4xx: upstream_denied with the code and the hint", async () => {
    const { ns, request } = await scenario([{ status: 400, body: ERROR_JSON("invalid_target") }, ok]);
    const err = await failure(callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() }));
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe("invalid_target");
    expect(err.description).toContain("hint for invalid_target.");
    expect(await capturedRequests(ns)).toHaveLength(1);
  });

  it("retries a 4xx whose code is declared transient", async () => {
    const { ns, request } = await scenario([{ status: 400, body: ERROR_JSON("IDPCommunicationError") }, ok]);
    await callUpstream(
      { ...request, retryableCodes: ["IDPCommunicationError"] },
      { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() },
    );
    expect(await capturedRequests(ns)).toHaveLength(2);
  });

  it("logs each retry with what went wrong: the status of an answer, the reason of a network error", async () => {
    const { request } = await scenario([{ status: 503, body: "busy" }, { drop: true }, ok]);
    const warnings = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      await callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() });
      const retries = warnings.mock.calls
        .map(([line]) => JSON.parse(String(line)) as Record<string, unknown>)
        .filter((l) => l.event === "upstream_retry");
      expect(retries).toEqual([
        expect.objectContaining({ service: "test-upstream", attempt: 1, status: 503 }),
        expect.objectContaining({ service: "test-upstream", attempt: 2, reason: expect.any(String) }),
      ]);
      expect(retries[0]).not.toHaveProperty("reason");
      expect(retries[1]).not.toHaveProperty("status");
    } finally {
      warnings.mockRestore();
    }
  });

  it("retries network errors (connection dropped)", async () => {
    const { ns, request } = await scenario([{ drop: true }, ok]);
    expect(await callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() })).toContain(
      "fine",
    );
    expect(await capturedRequests(ns)).toHaveLength(2);
  });

  it("maps persistent network errors to upstream_unavailable", async () => {
    const { request } = await scenario([{ drop: true }, { drop: true }, { drop: true }]);
    const err = await failure(callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() }));
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("network_error");
  });

  it("bounds a slow upstream by the timeout, without retrying", async () => {
    const { ns, request } = await scenario([{ delayMs: 1500 }]);
    const started = Date.now();
    const err = await failure(
      callUpstream(request, { deps: deps(), retry: { ...FAST_RETRY, timeoutMs: 200 }, timer: new UpstreamTimer() }),
    );
    expect(err.code).toBe("upstream_timeout");
    expect(Date.now() - started).toBeLessThan(1200);
    expect(await capturedRequests(ns)).toHaveLength(1);
  });

  it("refuses an oversized answer without buffering it", async () => {
    const { request } = await scenario([{ oversize: true }]);
    const err = await failure(callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() }));
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("response_too_large");
  });

  it("does not follow redirects", async () => {
    const { request } = await scenario([{ status: 302, body: "" }]);
    const err = await failure(callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() }));
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_status).toBe(302);
  });

  it("does not follow a redirect that names a Location (the body carries a token)", async () => {
    const { ns, request } = await scenario([{ status: 307, body: "", location: "login" }, ok]);
    const err = await failure(callUpstream(request, { deps: deps(), retry: FAST_RETRY, timer: new UpstreamTimer() }));
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_status).toBe(307);
    expect(await capturedRequests(ns)).toHaveLength(1);
  });
});

describe("safeCode", () => {
  it("echoes a printable upstream code, and the fallback for anything that is not a non-empty string", () => {
    expect(safeCode("invalid_grant", "unknown_error")).toBe("invalid_grant");
    expect(safeCode('bad"<code>\u0007\\', "unknown_error")).toBe("badcode");
    expect(safeCode("x".repeat(300), "unknown_error")).toHaveLength(200);
    for (const value of [5, null, undefined, { code: "x" }, ["invalid_grant"], "", " \u0001 "])
      expect(safeCode(value, "unknown_error")).toBe("unknown_error");
  });
});

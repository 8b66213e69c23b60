import { describe, expect, it } from "vitest";
import { resolveExchange } from "../../../src/providers/request-checks";
import type { ExchangeRequest } from "../../../src/providers/provider-credential";
import type { Target } from "../../../src/types";
import { awsTarget, azureTarget, gcpTarget, oidcTarget, vaultTarget } from "./fixtures";

const CP = "https://www.googleapis.com/auth/cloud-platform";

function refusal(target: Target, request: ExchangeRequest): string | undefined {
  try {
    resolveExchange(target, request);
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe("resolveExchange: defaults", () => {
  it("gcp: first scope, 1 h (within the target max)", () => {
    expect(resolveExchange(gcpTarget(), {})).toMatchObject({ scopes: [CP], lifetimeSeconds: 3600 });
    expect(resolveExchange(gcpTarget({ max_lifetime_seconds: 600 }), {})).toMatchObject({
      lifetimeSeconds: 600,
      mintLifetimeSeconds: 300,
    });
  });
  it("aws: 1 h, never below AWS's 900 s", () => {
    expect(resolveExchange(awsTarget({ max_lifetime_seconds: 7200 }), {}).lifetimeSeconds).toBe(3600);
    expect(resolveExchange(awsTarget({ max_lifetime_seconds: 1000 }), {}).lifetimeSeconds).toBe(1000);
  });
  it("oidc: 5 minutes, or the requested lifetime up to the target max", () => {
    expect(resolveExchange(oidcTarget(), {}).mintLifetimeSeconds).toBe(300);
    expect(resolveExchange(oidcTarget(), { lifetimeSeconds: 1800 }).mintLifetimeSeconds).toBe(1800);
  });
  it("gcp: an ID token only for an audience the target lists, exactly", () => {
    const target = gcpTarget({
      id_token_audiences: ["https://run.example.app", "32555940559.apps.googleusercontent.com"],
    });
    expect(resolveExchange(target, { audience: "https://run.example.app" })).toMatchObject({
      audience: "https://run.example.app",
      scopes: [],
    });
    expect(resolveExchange(target, { audience: "32555940559.apps.googleusercontent.com" }).audience).toBe(
      "32555940559.apps.googleusercontent.com",
    );
  });
  it("gcp: ID tokens are off unless the target lists audiences, and the refusal says how to turn them on", () => {
    expect(() => resolveExchange(gcpTarget(), { audience: "https://run.example.app" })).toThrow(
      expect.objectContaining({
        code: "invalid_scope",
        description: expect.stringMatching(/issues no ID tokens; list the audience under id_token_audiences/),
      }),
    );
    expect(() => resolveExchange(gcpTarget({ id_token_audiences: ["https://a"] }), { audience: "https://b" })).toThrow(
      expect.objectContaining({
        code: "invalid_scope",
        description: expect.stringMatching(/issues ID tokens only for the audience\(s\) https:\/\/a\./),
      }),
    );
  });
  it("azure: the target's scope", () => {
    expect(resolveExchange(azureTarget(), {}).scopes).toEqual(["https://management.azure.com/.default"]);
  });
});

describe("resolveExchange: refusals are invalid_scope, never a silent clamp", () => {
  it.each<[string, Target, ExchangeRequest]>([
    ["gcp scope outside the target's list", gcpTarget(), { scopes: [CP, "https://www.googleapis.com/auth/admin"] }],
    ["gcp empty scope list", gcpTarget(), { scopes: [] }],
    ["gcp lifetime above the target max", gcpTarget({ max_lifetime_seconds: 1800 }), { lifetimeSeconds: 1801 }],
    ["gcp lifetime without a service account", gcpTarget({ service_account: undefined }), { lifetimeSeconds: 600 }],
    ["gcp ID token without a service account", gcpTarget({ service_account: undefined }), { audience: "https://x" }],
    [
      "gcp ID token with a lifetime",
      gcpTarget({ id_token_audiences: ["https://x"] }),
      { audience: "https://x", lifetimeSeconds: 600 },
    ],
    [
      "gcp ID token with scopes",
      gcpTarget({ id_token_audiences: ["https://x"] }),
      { audience: "https://x", scopes: [CP] },
    ],
    ["gcp ID token from a target listing no audiences", gcpTarget(), { audience: "https://x" }],
    [
      "gcp ID token for an audience the target does not list",
      gcpTarget({ id_token_audiences: ["https://x"] }),
      { audience: "https://evil.example" },
    ],
    [
      "gcp ID token audience differing in case",
      gcpTarget({ id_token_audiences: ["https://x"] }),
      { audience: "https://X" },
    ],
    [
      "gcp ID token audience with a trailing slash",
      gcpTarget({ id_token_audiences: ["https://x"] }),
      { audience: "https://x/" },
    ],
    [
      "gcp ID token audience as a prefix",
      gcpTarget({ id_token_audiences: ["https://x"] }),
      { audience: "https://x.evil.example" },
    ],
    ["aws lifetime above the target max", awsTarget({ max_lifetime_seconds: 3600 }), { lifetimeSeconds: 3601 }],
    ["aws lifetime above AWS's 12 h", awsTarget({ max_lifetime_seconds: 86400 }), { lifetimeSeconds: 43201 }],
    ["aws lifetime below AWS's 900 s", awsTarget(), { lifetimeSeconds: 899 }],
    ["aws target whose max is below AWS's minimum", awsTarget({ max_lifetime_seconds: 600 }), {}],
    ["aws scope", awsTarget(), { scopes: ["x"] }],
    ["azure other scope", azureTarget(), { scopes: ["https://graph.microsoft.com/.default"] }],
    ["azure lifetime", azureTarget(), { lifetimeSeconds: 600 }],
    ["vault lifetime", vaultTarget("ns"), { lifetimeSeconds: 600 }],
    ["vault scope", vaultTarget("ns"), { scopes: ["x"] }],
    ["oidc lifetime above the target max", oidcTarget({ max_lifetime_seconds: 600 }), { lifetimeSeconds: 601 }],
    ["oidc lifetime above gatepass's max", oidcTarget({ max_lifetime_seconds: 86400 }), { lifetimeSeconds: 3601 }],
    ["oidc other audience", oidcTarget(), { audience: "https://evil.example.com" }],
  ])("%s", (_name, target, request) => {
    expect(refusal(target, request)).toBe("invalid_scope");
  });
});

// Offline identities (`gatepass policies test` / `explain`) normalise claims with the Worker's own code,
// so a policy test decides exactly as the Worker would, and refuses what the Worker refuses.
import { describe, expect, it } from "vitest";
import { offlineIdentity } from "../../cli/policy/offline-identity";
import type { IssuerConfig } from "../../src/types";

const issuer: IssuerConfig = {
  name: "corp-gitlab",
  url: "https://gitlab.example.com",
  kind: "gitlab",
  aliases: [],
  audiences: ["gatepass"],
  algorithms: ["RS256"],
  keys: { source: "discovery" },
  max_token_age_seconds: 3600,
  accept_legacy_ci_job_jwt: false,
};

describe("offline identity", () => {
  it("normalises claims as the Worker does: ids and booleans become strings, null and objects are dropped", () => {
    const identity = offlineIdentity(issuer, {
      project_id: 42,
      ref_protected: true,
      ref: "main",
      user_email: null,
      extra: { a: 1 },
      exp: 2_000_000_000,
    });
    expect(identity.claims).toEqual({ project_id: "42", ref_protected: "true", ref: "main", exp: "2000000000" });
    expect(identity.expiresAt).toBe(2_000_000_000);
  });

  it("refuses a claim the Worker refuses (a list where GitLab sends one value)", () => {
    expect(() => offlineIdentity(issuer, { ref: ["main"], project_id: "42" })).toThrow(
      /claims_invalid: The token's ref claim must be a string/,
    );
  });
});

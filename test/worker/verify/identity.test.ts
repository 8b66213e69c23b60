// What a verified token becomes (normalised claims, issuer name), which GitLab tokens count as CI
// tokens, legacy CI_JOB_JWT handling, and the issuer-URL quirks normalised for configured issuers.
import { describe, expect, it } from "vitest";
import type { IssuerConfig } from "../../../src/types";
import { normalizeClaims } from "../../../src/verify/claim-normalisation";
import { canonicalIssuerUrl } from "../../../src/verify/issuer-url";
import { findIssuer } from "../../../src/verify/issuer-lookup";
import { gitlabClaims, legacyClaims, signToken } from "../../support/tokens";
import { AUDIENCE, createHarness, expectCode, standinIssuer } from "./harness";

describe("verified identity", () => {
  it("returns the issuer name and GitLab's full claim set, normalised to strings", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const token = await iss.token();
    const identity = await h.verifier.verify(token, [iss.config], h.env, h.waitUntil);
    const now = h.now();
    expect(identity).toMatchObject({
      issuer: iss.name,
      issuerUrl: iss.config.url,
      issuedAt: now,
      expiresAt: now + 300,
      legacy: false,
    });
    expect(identity.tokenSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(identity.claims).toMatchObject({
      iss: iss.config.url,
      sub: "project_path:platform/infra:ref_type:branch:ref:main",
      aud: AUDIENCE,
      project_id: "1234",
      project_path: "platform/infra",
      namespace_id: "72",
      pipeline_id: "98765",
      job_id: "555001",
      ref: "main",
      ref_type: "branch",
      ref_protected: "true",
      runner_id: "17", // a number in the token
      environment_protected: "false",
      groups_direct: ["platform", "platform/sre"],
      iat: String(now),
    });
    // Objects cannot be matched by policy and are left out rather than stringified.
    expect(identity.claims).not.toHaveProperty("user_identities");
    expect(Object.isFrozen(identity.claims)).toBe(true);
  });

  it("drops null claims (GitLab sends user_email: null) instead of matching on 'null'", () => {
    expect(normalizeClaims({ user_email: null, sub: "x" })).toEqual({ sub: "x" });
    expect(normalizeClaims({ groups_direct: null, environment: null, sub: "x" })).toEqual({ sub: "x" });
  });

  it("keeps unknown claims that are scalars or lists of scalars, as strings, and leaves out the rest", () => {
    expect(
      normalizeClaims({ sub: "x", tier: 2, tags: ["a", 1, true], mixed: ["a", { b: 1 }], nested: { a: 1 } }),
    ).toEqual({
      sub: "x",
      tier: "2",
      tags: ["a", "1", "true"],
    });
  });

  it("keeps a __proto__ claim as a plain key", () => {
    const claims = normalizeClaims(JSON.parse('{"__proto__": "evil", "sub": "x"}') as Record<string, unknown>);
    expect(Object.getPrototypeOf(claims)).toBe(Object.prototype);
    expect(claims["__proto__"]).toBe("evil");
  });

  it("refuses known claims holding integers past 2^53 (rounded by JSON.parse) and leaves unknown ones out", () => {
    const payload = JSON.parse(
      '{"sub": "x", "project_id": 12345678901234567891, "custom": 12345678901234567891, "small": 9007199254740991}',
    ) as Record<string, unknown>;
    expect(() => normalizeClaims(payload)).toThrow(
      expect.objectContaining({ code: "claims_invalid", details: { claim: "project_id" } }),
    );
    delete payload.project_id;
    expect(normalizeClaims(payload)).toEqual({ sub: "x", small: "9007199254740991" });
  });

  it("refuses a user-login ID token from a GitLab issuer (no CI claims)", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    for (const missing of ["project_id", "pipeline_id", "job_id"]) {
      await expectCode(
        h.verifier.verify(await iss.token({ [missing]: undefined }), [iss.config], h.env, h.waitUntil),
        "not_a_ci_token",
      );
    }
    // An empty job_id is not a GitLab id at all (user_id alone may be "").
    await expectCode(
      h.verifier.verify(await iss.token({ job_id: "" }), [iss.config], h.env, h.waitUntil),
      "claims_invalid",
    );
  });

  it("does not require CI claims from a generic issuer", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h, { config: { kind: "generic" } });
    const token = await signToken(iss.key, {
      iss: iss.config.url,
      aud: AUDIENCE,
      sub: "repo:org/app",
      iat: h.now(),
      exp: h.now() + 300,
    });
    expect((await h.verifier.verify(token, [iss.config], h.env, h.waitUntil)).claims).toMatchObject({
      sub: "repo:org/app",
    });
  });
});

describe("legacy CI_JOB_JWT", () => {
  async function legacyIssuer(accept: boolean) {
    const h = createHarness();
    // The bare host name maps to https://<host>, which this stand-in (http, another port, under a
    // path) needs as an alias, like a real install on another port or under a path.
    const probe = await standinIssuer(h);
    const bareHost = new URL(probe.config.url).hostname;
    const config: IssuerConfig = {
      ...probe.config,
      aliases: [`https://${bareHost}`],
      accept_legacy_ci_job_jwt: accept,
    };
    const token = (overrides: Record<string, unknown> = {}) =>
      signToken(probe.key, { ...legacyClaims({ issuer: probe.config.url, now: h.now() }), ...overrides });
    return { h, config, token };
  }

  it("is refused unless the issuer enables it", async () => {
    const { h, config, token } = await legacyIssuer(false);
    await expectCode(h.verifier.verify(await token(), [config], h.env, h.waitUntil), "legacy_token_refused");
  });

  it("is accepted when enabled, marked legacy, with sub job_<id>", async () => {
    const { h, config, token } = await legacyIssuer(true);
    const identity = await h.verifier.verify(await token(), [config], h.env, h.waitUntil);
    expect(identity).toMatchObject({ legacy: true, claims: { sub: "job_555001", job_id: "555001" } });
  });

  it("still needs sub to name the job, and all other checks", async () => {
    const { h, config, token } = await legacyIssuer(true);
    await expectCode(h.verifier.verify(await token({ sub: "job_1" }), [config], h.env, h.waitUntil), "claims_invalid");
    await expectCode(
      h.verifier.verify(await token({ exp: h.now() - 3600 }), [config], h.env, h.waitUntil),
      "token_expired",
    );
  });

  it("needs job_id to be a string or number (an object never stands in for the job)", async () => {
    const { h, config, token } = await legacyIssuer(true);
    await expectCode(
      h.verifier.verify(
        await token({ job_id: { toString: 1 }, sub: "job_[object Object]" }),
        [config],
        h.env,
        h.waitUntil,
      ),
      "claims_invalid",
    );
    await expectCode(
      h.verifier.verify(await token({ job_id: ["555001"], sub: "job_555001" }), [config], h.env, h.waitUntil),
      "claims_invalid",
    );
  });

  it("is never accepted from a generic issuer, even when enabled", async () => {
    const { h, config, token } = await legacyIssuer(true);
    await expectCode(
      h.verifier.verify(await token(), [{ ...config, kind: "generic" }], h.env, h.waitUntil),
      "legacy_token_refused",
    );
  });

  it("a bare-host iss with an aud is not legacy: its aud is checked", async () => {
    const { h, config, token } = await legacyIssuer(true);
    await expectCode(
      h.verifier.verify(await token({ aud: "https://elsewhere.example" }), [config], h.env, h.waitUntil),
      "audience_mismatch",
    );
  });

  it("a scheme-ful iss without aud is not legacy: it is an audience mismatch", async () => {
    const { h, config, token } = await legacyIssuer(true);
    await expectCode(
      h.verifier.verify(await token({ iss: config.url }), [config], h.env, h.waitUntil),
      "audience_mismatch",
    );
  });
});

describe("issuer URL quirks (configured issuers only)", () => {
  const issuer = (url: string, aliases: string[] = []): IssuerConfig => ({
    name: url,
    url,
    kind: "gitlab",
    aliases,
    audiences: [AUDIENCE],
    algorithms: ["RS256"],
    keys: { source: "discovery" },
    max_token_age_seconds: 3600,
    accept_legacy_ci_job_jwt: false,
  });
  const gitlab = issuer("https://gitlab.example.com");
  const relative = issuer("https://example.com/gitlab");
  const loopback = issuer("https://127.0.0.1");
  const withPort = issuer("https://127.0.0.1:19102");
  const all = [gitlab, relative, loopback, withPort];

  it.each([
    ["no scheme", "gitlab.example.com", gitlab],
    ["trailing slash", "https://gitlab.example.com/", gitlab],
    ["host case", "https://GitLab.Example.COM", gitlab],
    ["default port", "https://gitlab.example.com:443", gitlab],
    ["relative-URL install", "https://example.com/gitlab", relative],
    ["relative-URL install, trailing slash", "https://example.com/gitlab/", relative],
    ["a port, trailing slash", "https://127.0.0.1:19102/", withPort],
  ])("normalises %s", (_label, iss, expected) => {
    expect(findIssuer(iss, all)).toBe(expected);
  });

  it.each([
    ["another scheme", "http://gitlab.example.com"],
    ["another port", "https://gitlab.example.com:8443"],
    ["a sub-path of an install", "https://example.com/gitlab/evil"],
    ["the host of a relative install", "https://example.com"],
    ["a suffix look-alike", "https://gitlab.example.com.evil.example"],
    ["a query", "https://gitlab.example.com/?x=1"],
    ["credentials", "https://user@gitlab.example.com"],
    ["an empty string", ""],
    ["a dot segment", "https://gitlab.example.com/a/.."],
    ["an escaped dot segment", "https://example.com/gitlab/%2e%2e/gitlab"],
    ["a percent-escape", "https://example.com/%67itlab"],
    ["a backslash", "gitlab.example.com\\"],
    ["a scheme-relative spelling", "//gitlab.example.com"],
    ["a full-width host", "https://ｇｉｔｌａｂ.example.com"],
    ["a control character", "https://gitlab.example.com\u0001"],
    ["a numeric-shorthand host", "https://0x7f.1"],
    ["a port with a leading zero", "https://gitlab.example.com:0443"],
    ["a leading-zero spelling of another port", "https://127.0.0.1:019102"],
    ["an empty port", "https://gitlab.example.com:"],
    ["an empty query", "https://gitlab.example.com/?"],
    ["an empty query after an install path", "https://example.com/gitlab?"],
    ["an empty fragment", "https://gitlab.example.com#"],
    ["two trailing slashes", "https://gitlab.example.com//"],
    ["an empty segment after an install path", "https://example.com/gitlab//"],
    ["an empty segment inside an install path", "https://example.com//gitlab"],
  ])("does not stretch to %s", async (_label, iss) => {
    await expectCode(
      Promise.resolve().then(() => findIssuer(iss, all)),
      "issuer_unknown",
    );
  });

  it.each([
    "ftp://gitlab.example.com",
    "file://gitlab.example.com",
    "ws://gitlab.example.com",
    "javascript://gitlab.example.com",
  ])("has no canonical spelling for %s (http(s) only)", (raw) => {
    expect(canonicalIssuerUrl(raw)).toBeUndefined();
  });

  it("accepts configured aliases", () => {
    const aliased = issuer("https://gitlab.example.com", ["https://gitlab-old.example.com"]);
    expect(findIssuer("gitlab-old.example.com/", [aliased])).toBe(aliased);
  });

  it("matches a token whose iss has a trailing slash, end to end", async () => {
    const h = createHarness();
    const iss = await standinIssuer(h);
    const token = await signToken(
      iss.key,
      gitlabClaims({ issuer: `${iss.config.url}/`, audience: AUDIENCE, now: h.now() }),
    );
    expect(await h.verifier.verify(token, [iss.config], h.env, h.waitUntil)).toMatchObject({ issuer: iss.name });
  });
});

import { decodeProtectedHeader, importJWK, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { MINTED_TOKEN_MAX_LIFETIME_SECONDS } from "../../../src/limits";
import { buildClaims, COPIED_CI_CLAIMS, mintedExpiry, mintToken } from "../../../src/mint/minted-token";
import { CI_CLAIMS, gcpTarget, identity, ISSUER, oidcTarget, testKeyRing } from "./fixtures";

const NOW = Math.floor(Date.now() / 1000);

describe("minted token", () => {
  it("carries iss, default sub, the target's aud, integer times and the rule", () => {
    const claims = buildClaims({
      issuer: ISSUER,
      target: gcpTarget(),
      identity: identity(NOW),
      rule: "deploy-main",
      now: NOW,
      lifetimeSeconds: 300,
    });
    expect(claims).toMatchObject({
      iss: ISSUER,
      sub: "target:gcp-deploy",
      aud: gcpTarget().audience,
      iat: NOW,
      nbf: NOW,
      exp: NOW + 300,
      rule: "deploy-main",
      target: "gcp-deploy",
      source_issuer: "https://gitlab.example.com",
      source_sub: CI_CLAIMS.sub,
      source_jti: CI_CLAIMS.jti,
    });
    for (const t of [claims.iat, claims.nbf, claims.exp]) expect(Number.isInteger(t)).toBe(true);
  });

  it("copies CI string claims, but not user_email, arrays, or the CI token's own registered claims", () => {
    const claims = buildClaims({
      issuer: ISSUER,
      target: gcpTarget(),
      identity: identity(NOW),
      rule: "r",
      now: NOW,
      lifetimeSeconds: 300,
    });
    for (const name of COPIED_CI_CLAIMS) {
      const value = (CI_CLAIMS as Record<string, unknown>)[name];
      if (typeof value === "string") expect(claims[name]).toBe(value);
    }
    expect(claims).not.toHaveProperty("user_email");
    expect(claims).not.toHaveProperty("groups_direct");
    expect(claims.jti).not.toBe(CI_CLAIMS.jti);
  });

  it("uses a fresh jti every time", () => {
    const input = {
      issuer: ISSUER,
      target: gcpTarget(),
      identity: identity(NOW),
      rule: "r",
      now: NOW,
      lifetimeSeconds: 300,
    };
    expect(buildClaims(input).jti).not.toBe(buildClaims(input).jti);
  });

  it("honours a subject override and refuses one over 127 bytes", () => {
    const ok = buildClaims({
      issuer: ISSUER,
      target: gcpTarget({ subject: "deployer" }),
      identity: identity(NOW),
      rule: "r",
      now: NOW,
      lifetimeSeconds: 60,
    });
    expect(ok.sub).toBe("deployer");
    const long = "é".repeat(64); // 128 bytes, 64 characters
    expect(() =>
      buildClaims({
        issuer: ISSUER,
        target: gcpTarget({ subject: long }),
        identity: identity(NOW),
        rule: "r",
        now: NOW,
        lifetimeSeconds: 60,
      }),
    ).toThrow(expect.objectContaining({ code: "internal_error" }));
  });

  it("expires at the earliest of the CI token, the target max, gatepass's max and the request", () => {
    expect(mintedExpiry(NOW, NOW + 100, 3600, 3600)).toBe(NOW + 100);
    expect(mintedExpiry(NOW, NOW + 9999, 200, 3600)).toBe(NOW + 200);
    expect(mintedExpiry(NOW, NOW + 99999, 99999, 99999)).toBe(NOW + MINTED_TOKEN_MAX_LIFETIME_SECONDS);
    expect(mintedExpiry(NOW, NOW + 9999, 3600, 120)).toBe(NOW + 120);
  });

  it("refuses to mint for a CI token that has already expired", () => {
    expect(() =>
      buildClaims({
        issuer: ISSUER,
        target: oidcTarget(),
        identity: identity(NOW, { expiresAt: NOW }),
        rule: "r",
        now: NOW,
        lifetimeSeconds: 60,
      }),
    ).toThrow(expect.objectContaining({ code: "token_expired" }));
  });

  it.each(["ES256", "RS256"] as const)(
    "signs with the current %s key, verifiable with the published JWK",
    async (alg) => {
      const ring = await testKeyRing();
      const minted = await mintToken(ring, {
        issuer: ISSUER,
        target: oidcTarget({ signing_alg: alg }),
        identity: identity(NOW),
        rule: "r",
        now: NOW,
        lifetimeSeconds: 60,
      });
      const header = decodeProtectedHeader(minted.token);
      expect(header).toEqual({ alg, typ: "JWT", kid: minted.kid });
      const jwk = ring.published(NOW).find((k) => k.kid === minted.kid)!;
      expect(jwk.alg).toBe(alg);
      const { payload } = await jwtVerify(minted.token, await importJWK(jwk, alg), {
        issuer: ISSUER,
        audience: "https://rp.example.com",
      });
      expect(payload).toEqual(minted.claims);
    },
  );
});

// What an audit row records of an unauthenticated caller (issue 30): the issuer or credential id it
// merely named goes to claimed_issuer / claimed_actor, never to issuer / actor, and does not make the
// row priority; a refused token's unverified issuer is recorded so concealed refusals can be found.
import { SELF } from "cloudflare:test";
import { SignJWT, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import { auditClassOf } from "../../../src/audit/audit-event";
import { parseAuditFilter } from "../../../src/audit/audit-query";
import { bearer, createHarness } from "../exchange/app-harness";
import { auditEventsFor } from "./events";

const MADE_UP = `gpk_0123456789abcdef_${"ab".repeat(32)}`;

async function pushEvent(headers: Record<string, string>) {
  const res = await SELF.fetch("https://gatepass.test/v1/admin/issuers/corp-gitlab/jwks", {
    method: "PUT",
    headers,
    body: "{}",
  });
  const [event] = await auditEventsFor(res.headers.get("X-Request-Id")!);
  return { status: res.status, event: event! };
}

describe("key pushes by callers who did not authenticate", () => {
  it("record the path issuer and a made-up credential id as claimed, never as issuer or actor, and are junk", async () => {
    const forged = await pushEvent({ Authorization: `Bearer ${MADE_UP}` });
    expect(forged.event).toMatchObject({
      error_code: "push_credential_invalid",
      issuer: null,
      actor: null,
      claimed_issuer: "corp-gitlab",
      claimed_actor: "gpk_0123456789abcdef",
    });
    expect(auditClassOf(forged.event)).toBe("junk");

    const none = await pushEvent({});
    expect(none.event).toMatchObject({
      error_code: "admin_unauthorized",
      issuer: null,
      actor: null,
      claimed_issuer: "corp-gitlab",
      claimed_actor: null,
    });
    expect(auditClassOf(none.event)).toBe("junk");
  });

  it("record the issuer and actor once the admin token is accepted, as priority", async () => {
    const admin = await pushEvent({ Authorization: "Bearer test-admin-token" });
    expect(admin.event).toMatchObject({ issuer: "corp-gitlab", actor: "admin" });
    expect(auditClassOf(admin.event)).toBe("priority");
  });
});

describe("the claimed issuer of a refused token", () => {
  it("is recorded unverified, by the configured name when its iss is a configured issuer's, and can be filtered on", async () => {
    const app = await createHarness();
    await app.scenario();
    // Signed by a key the issuer does not publish (as after a key rotation): a concealed key_unknown.
    const { privateKey } = await generateKeyPair("RS256");
    const now = Math.floor(Date.now() / 1000);
    const sign = (iss: string) =>
      new SignJWT({ project_path: "platform/infra" })
        .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: "rotated-away" })
        .setIssuer(iss)
        .setAudience("gatepass")
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(privateKey);
    const refused = async (token: string) => {
      const res = await app.request("/v1/credentials/oidc-any", { method: "POST", headers: bearer(token) });
      return (await auditEventsFor(res.headers.get("X-Request-Id")!))[0]!;
    };
    const rotated = await refused(await sign(app.ciIssuerUrl));
    expect(rotated).toMatchObject({
      error_code: "key_unknown",
      issuer: null,
      claimed_issuer: "ci",
      project_path: null,
    });
    expect(auditClassOf(rotated)).toBe("junk");
    const elsewhere = await refused(await sign("https://unknown-issuer.example"));
    expect(elsewhere).toMatchObject({ issuer: null, claimed_issuer: "https://unknown-issuer.example" });
    const long = await refused(await sign(`https://x.example/${"a".repeat(1000)}`));
    expect(long.claimed_issuer).toHaveLength(256);

    const res = await SELF.fetch(`https://gatepass.test/v1/admin/audit?claimed_issuer=ci&decision=deny&limit=500`, {
      headers: { Authorization: "Bearer test-admin-token" },
    });
    const { events } = (await res.json()) as { events: { request_id: string; claimed_issuer: string }[] };
    expect(events.map((e) => e.request_id)).toContain(rotated.request_id);
    expect(events.every((e) => e.claimed_issuer === "ci")).toBe(true);
  });

  it("is a filter of its own, apart from the verified issuer", () => {
    expect(parseAuditFilter({ claimed_issuer: "corp-gitlab", issuer: "ci" })).toEqual({
      claimed_issuer: "corp-gitlab",
      issuer: "ci",
    });
    expect(() => parseAuditFilter({ claimed_issuer: "" })).toThrow(/claimed_issuer must be 1 to/);
  });
});

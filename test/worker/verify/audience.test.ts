// `single_audience` (per issuer): a token whose aud also names other services could be replayed to
// gatepass by any of them, so it is refused unless the issuer opts out. Policy files default to true;
// snapshots pushed before the option existed load unchanged and keep their old behaviour.
import { beforeEach, describe, expect, it } from "vitest";
import { loadSnapshot } from "../../../src/policy/load-snapshot";
import { normalizePolicy } from "../../../src/policy/policy-schema";
import { buildSnapshot, canonicalJson } from "../../../src/policy/snapshot-format";
import type { IssuerConfig } from "../../../src/types";
import { AUDIENCE, createHarness, expectCode, standinIssuer, type Harness, type StandinIssuer } from "./harness";

let h: Harness;
let iss: StandinIssuer;

beforeEach(async () => {
  h = createHarness();
  iss = await standinIssuer(h);
});

const verify = (token: string, config: IssuerConfig) => h.verifier.verify(token, [config], h.env, h.waitUntil);

describe("single_audience: true", () => {
  it("refuses a token whose aud lists gatepass and another service (audience_multiple)", async () => {
    const single = { ...iss.config, single_audience: true };
    await expect(verify(await iss.token({ aud: [AUDIENCE, "https://vault.example"] }), single)).rejects.toMatchObject({
      code: "audience_multiple",
      description: expect.stringContaining(`aud is just ${AUDIENCE}`),
    });
    await expectCode(
      verify(await iss.token({ aud: ["https://vault.example", AUDIENCE] }), single),
      "audience_multiple",
    );
  });

  it("accepts aud as gatepass's audience alone, as a string or a list of one", async () => {
    const single = { ...iss.config, single_audience: true };
    expect(await verify(await iss.token({ aud: AUDIENCE }), single)).toMatchObject({ issuer: iss.name });
    expect(await verify(await iss.token({ aud: [AUDIENCE] }), single)).toMatchObject({ issuer: iss.name });
  });

  it("still answers audience_mismatch when no audience is gatepass's", async () => {
    const single = { ...iss.config, single_audience: true };
    await expectCode(
      verify(await iss.token({ aud: ["https://a.example", "https://b.example"] }), single),
      "audience_mismatch",
    );
  });
});

describe("single_audience: false", () => {
  it("accepts a token whose aud also names other services", async () => {
    const several = { ...iss.config, single_audience: false };
    expect(await verify(await iss.token({ aud: [AUDIENCE, "https://vault.example"] }), several)).toMatchObject({
      issuer: iss.name,
    });
  });
});

describe("its default", () => {
  const source = (issuer: Record<string, unknown>) =>
    normalizePolicy([{ name: "issuers.yaml", value: { issuers: [issuer] } }], "source");
  const written = { name: "corp-gitlab", url: "https://gitlab.example.com", audiences: ["gatepass"] };

  it("is true in policy files, and the pushed snapshot says so", async () => {
    const { policy, problems } = source(written);
    expect(problems).toEqual([]);
    expect(policy.issuers[0]!.single_audience).toBe(true);
    const { text } = await buildSnapshot(policy, {
      sourceDigest: "0".repeat(64),
      createdAt: "2026-01-01T00:00:00.000Z",
    });
    expect((await loadSnapshot(text)).issuers[0]!.single_audience).toBe(true);
    expect(source({ ...written, single_audience: false }).policy.issuers[0]!.single_audience).toBe(false);
  });

  it("leaves a snapshot pushed before the option existed loadable and unchanged: it keeps accepting several audiences", async () => {
    const { policy } = source(written);
    const { snapshot } = await buildSnapshot(policy, {
      sourceDigest: "0".repeat(64),
      createdAt: "2026-01-01T00:00:00.000Z",
    });
    // The same snapshot as an older gatepass wrote it: no single_audience key, hashed without it.
    const issuers = snapshot.issuers.map(({ single_audience: _dropped, ...rest }) => rest) as IssuerConfig[];
    const { text: old } = await buildSnapshot(
      { ...policy, issuers },
      { sourceDigest: "0".repeat(64), createdAt: "2026-01-01T00:00:00.000Z" },
    );
    expect(old).not.toContain("single_audience");
    const loaded = await loadSnapshot(old);
    expect(loaded.issuers[0]!.single_audience).toBeUndefined();
    expect(canonicalJson(loaded.issuers)).toBe(canonicalJson(issuers));

    const legacy = { ...iss.config, single_audience: loaded.issuers[0]!.single_audience };
    expect(await verify(await iss.token({ aud: [AUDIENCE, "https://vault.example"] }), legacy)).toMatchObject({
      issuer: iss.name,
    });
  });

  it("refuses a value that is not a boolean", () => {
    expect(source({ ...written, single_audience: "yes" }).problems).toEqual([
      expect.objectContaining({ path: ["issuers", 0, "single_audience"] }),
    ]);
  });
});

// Property-based fuzzing of the upstream expiry checks (src/providers/upstream-call.ts): whatever number,
// string or date an upstream sends, the check either refuses it as a malformed answer or yields an
// expiry every output format can render (a 1e300 once overflowed Date into a 500 after issuing).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isGatepassError } from "../../../src/errors";
import { renderCredential } from "../../../src/format/format-credential";
import { MAX_UPSTREAM_EXPIRY_SECONDS } from "../../../src/limits";
import type { Credential } from "../../../src/providers/provider-credential";
import { checkedExpiresAt, checkedExpiresIn } from "../../../src/providers/upstream-call";
import { runs } from "./fuzz";

const NOW = 1_800_000_000;

/** Numbers near every edge: huge, tiny, fractional, negative, around the bound, non-finite. */
const anyNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.integer({ min: -2, max: MAX_UPSTREAM_EXPIRY_SECONDS + 2 }),
  fc.constantFrom(
    1e300,
    9e15,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 2,
    8.64e12,
    0.5,
    -0,
    Number.NaN,
    Infinity,
    -Infinity,
  ),
);
const anyValue = fc.oneof(anyNumber, fc.string(), fc.constant(null), fc.boolean(), anyNumber.map(String));

/** Every output format renders the credential without throwing. */
function renders(expiresAt: number): void {
  const credentials: Credential[] = [
    { kind: "access_token", provider: "gcp", target: "g", accessToken: "ya29.x", scopes: ["s"], expiresAt },
    {
      kind: "aws",
      provider: "aws",
      target: "a",
      accessKeyId: "ASIA",
      secretAccessKey: "s",
      sessionToken: "t",
      region: "eu-west-1",
      expiresAt,
    },
  ];
  for (const credential of credentials) {
    for (const format of ["json", "env", "dotenv"] as const) renderCredential(credential, format, NOW);
  }
  renderCredential(credentials[1]!, "credential_process", NOW);
}

function malformedOrRenders(check: () => number): void {
  let expiry: number;
  try {
    expiry = check();
  } catch (err) {
    expect(
      isGatepassError(err) &&
        err.code === "upstream_unavailable" &&
        err.details.upstream_error === "malformed_response",
    ).toBe(true);
    return;
  }
  expect(Number.isSafeInteger(expiry)).toBe(true);
  renders(expiry > NOW ? expiry : NOW + expiry);
}

describe("upstream expiry checks", () => {
  it("a relative expiry is a whole number of seconds in [1, bound], or malformed; accepted ones always render", () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        malformedOrRenders(() => {
          const seconds = checkedExpiresIn("fuzz", "expires_in", value);
          expect(seconds).toBeGreaterThanOrEqual(1);
          expect(seconds).toBeLessThanOrEqual(MAX_UPSTREAM_EXPIRY_SECONDS);
          return seconds;
        });
      }),
      runs(2_000),
    );
  });

  it("an absolute expiry (a parsed date string) lies in (now, now + bound], or is malformed", () => {
    const dateText = fc.oneof(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc
        .integer({ min: -10, max: MAX_UPSTREAM_EXPIRY_SECONDS + 10 })
        .map((s) => new Date((NOW + s) * 1000).toISOString()),
      fc.string(),
      fc.constantFrom(
        "+275760-09-13T00:00:00.000Z",
        "-271821-04-20T00:00:00.000Z",
        "9999-12-31T23:59:59Z",
        "0",
        "1e300",
      ),
    );
    fc.assert(
      fc.property(dateText, (text) => {
        malformedOrRenders(() => {
          const at = checkedExpiresAt("fuzz", "expireTime", Math.floor(Date.parse(text) / 1000), NOW);
          expect(at).toBeGreaterThan(NOW);
          expect(at - NOW).toBeLessThanOrEqual(MAX_UPSTREAM_EXPIRY_SECONDS);
          return at;
        });
      }),
      runs(2_000),
    );
  });
});

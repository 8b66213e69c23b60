// The request parameter parsers: what a CI author may write, and the sentence for what they may not.
import { describe, expect, it } from "vitest";
import { MAX_PARAM_VALUE_LENGTH, MAX_SCOPE_LENGTH, MAX_SCOPES, MAX_TOKEN_BYTES } from "../../../src/limits";
import { parseLifetime, parsePrintable, parseScopes } from "../../../src/routes/params";
import { subjectToken, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from "../../../src/routes/token";

const refusal = (parse: () => unknown) => {
  try {
    parse();
  } catch (err) {
    return err as { code: string; description: string };
  }
  throw new Error("the value was accepted");
};

describe("parseLifetime", () => {
  it.each([["900", 900], ["900s", 900], ["15m", 900], ["1h", 3600], [undefined, undefined]])("reads %s", (value, seconds) => {
    expect(parseLifetime(value)).toBe(seconds);
  });

  it.each([["0"], ["-5"], ["015m"], ["1d"], ["1.5h"], ["1234567"], [""]])("refuses %j", (value) => {
    expect(refusal(() => parseLifetime(value))).toMatchObject({ code: "request_invalid", description: expect.stringMatching(/^lifetime must be/) });
  });
});

describe("parseScopes", () => {
  it("splits on spaces and commas and drops repeats", () => {
    expect(parseScopes("a b,c, a")).toEqual(["a", "b", "c"]);
  });

  it.each([
    ["nothing but separators", " , "],
    ["more than MAX_SCOPES", Array.from({ length: MAX_SCOPES + 1 }, (_, i) => `s${i}`).join(" ")],
    ["a scope over MAX_SCOPE_LENGTH", "s".repeat(MAX_SCOPE_LENGTH + 1)],
    ["a non-ASCII scope", "café"],
  ])("refuses %s", (_name, value) => {
    expect(refusal(() => parseScopes(value))).toMatchObject({ code: "request_invalid", description: `scope must list 1-${MAX_SCOPES} scopes separated by spaces or commas.` });
  });

  it("accepts exactly MAX_SCOPES scopes of MAX_SCOPE_LENGTH", () => {
    const scopes = Array.from({ length: MAX_SCOPES }, (_, i) => `${i}`.padEnd(MAX_SCOPE_LENGTH, "s"));
    expect(parseScopes(scopes.join(" "))).toEqual(scopes);
  });
});

describe("parsePrintable", () => {
  it.each([["empty", ""], ["too long", "a".repeat(MAX_PARAM_VALUE_LENGTH + 1)], ["a newline", "a\nb"], ["non-ASCII", "é"]])("refuses %s", (_name, value) => {
    expect(refusal(() => parsePrintable("audience", value))).toMatchObject({
      code: "request_invalid",
      description: `audience must be 1-${MAX_PARAM_VALUE_LENGTH} printable ASCII characters.`,
    });
  });

  it("passes printable ASCII, spaces included, up to the cap", () => {
    expect(parsePrintable("token_file", "a b")).toBe("a b");
    expect(parsePrintable("audience", "a".repeat(MAX_PARAM_VALUE_LENGTH))).toHaveLength(MAX_PARAM_VALUE_LENGTH);
  });
});

describe("subjectToken", () => {
  const exchange = { grant_type: TOKEN_EXCHANGE_GRANT, subject_token_type: TOKEN_TYPE.jwt };

  it("returns the subject token of a token-exchange grant", () => {
    expect(subjectToken({ ...exchange, subject_token: "a.b.c" })).toBe("a.b.c");
    expect(subjectToken({ ...exchange, subject_token: "a.b.c", subject_token_type: TOKEN_TYPE.idToken })).toBe("a.b.c");
  });

  it.each([
    ["another grant", { ...exchange, grant_type: "client_credentials", subject_token: "a.b.c" }, "grant_type_unsupported"],
    ["no subject token", { ...exchange }, "request_invalid"],
    ["a subject token over the cap, before anything parses it", { ...exchange, subject_token: "a".repeat(MAX_TOKEN_BYTES + 1) }, "token_too_large"],
    ["an access token as subject", { ...exchange, subject_token: "a.b.c", subject_token_type: TOKEN_TYPE.accessToken }, "request_invalid"],
  ])("refuses %s", (_name, params, code) => {
    expect(refusal(() => subjectToken(params))).toMatchObject({ code });
  });
});

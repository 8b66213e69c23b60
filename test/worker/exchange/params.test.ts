// The request parameter parsers: what a CI author may write, and the sentence for what they may not;
// and how many parameters a request may carry, counted before they are parsed.
import { beforeAll, describe, expect, it } from "vitest";
import {
  MAX_PARAM_VALUE_LENGTH,
  MAX_REQUEST_PARAMETERS,
  MAX_SCOPE_LENGTH,
  MAX_SCOPES,
  MAX_TOKEN_BYTES,
} from "../../../src/limits";
import { parseLifetime, parsePrintable, parseScopes } from "../../../src/http/request-params";
import { subjectToken, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from "../../../src/routes/token-exchange-endpoint";
import { bearer, createHarness, FORM, type Harness } from "./app-harness";

const refusal = (parse: () => unknown) => {
  try {
    parse();
  } catch (err) {
    return err as { code: string; description: string };
  }
  throw new Error("the value was accepted");
};

describe("parseLifetime", () => {
  it.each([
    ["900", 900],
    ["900s", 900],
    ["15m", 900],
    ["1h", 3600],
    [undefined, undefined],
  ])("reads %s", (value, seconds) => {
    expect(parseLifetime(value)).toBe(seconds);
  });

  it.each([["0"], ["-5"], ["015m"], ["1d"], ["1.5h"], ["1234567"], [""]])("refuses %j", (value) => {
    expect(refusal(() => parseLifetime(value))).toMatchObject({
      code: "request_invalid",
      description: expect.stringMatching(/^lifetime must be/),
    });
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
    expect(refusal(() => parseScopes(value))).toMatchObject({
      code: "request_invalid",
      description: `scope must list 1-${MAX_SCOPES} scopes separated by spaces or commas.`,
    });
  });

  it("accepts exactly MAX_SCOPES scopes of MAX_SCOPE_LENGTH", () => {
    const scopes = Array.from({ length: MAX_SCOPES }, (_, i) => `${i}`.padEnd(MAX_SCOPE_LENGTH, "s"));
    expect(parseScopes(scopes.join(" "))).toEqual(scopes);
  });
});

describe("parsePrintable", () => {
  it.each([
    ["empty", ""],
    ["too long", "a".repeat(MAX_PARAM_VALUE_LENGTH + 1)],
    ["a newline", "a\nb"],
    ["non-ASCII", "é"],
  ])("refuses %s", (_name, value) => {
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
    [
      "another grant",
      { ...exchange, grant_type: "client_credentials", subject_token: "a.b.c" },
      "grant_type_unsupported",
    ],
    ["no subject token", { ...exchange }, "request_invalid"],
    [
      "a subject token over the cap, before anything parses it",
      { ...exchange, subject_token: "a".repeat(MAX_TOKEN_BYTES + 1) },
      "token_too_large",
    ],
    [
      "an access token as subject",
      { ...exchange, subject_token: "a.b.c", subject_token_type: TOKEN_TYPE.accessToken },
      "request_invalid",
    ],
  ])("refuses %s", (_name, params, code) => {
    expect(refusal(() => subjectToken(params))).toMatchObject({ code });
  });
});

describe("parameter counts, before parsing (readParams through the app)", () => {
  let h: Harness;
  let token: string;
  beforeAll(async () => {
    h = await createHarness();
    await h.scenario();
    token = await h.ciToken();
  });

  const tooMany = `The request has more than ${MAX_REQUEST_PARAMETERS} parameters; this endpoint takes at most: lifetime, scope, audience, format, token_file.`;
  const send = (body: string, type = FORM["Content-Type"], query = "") =>
    h.request(`/v1/credentials/oidc-any${query}`, {
      method: "POST",
      headers: bearer(token, { "Content-Type": type }),
      body,
    });
  const refusalOf = async (res: Response) => ({
    status: res.status,
    ...((await res.json()) as { code: string; error_description: string }),
  });

  it.each([
    ["17 form fields", Array.from({ length: MAX_REQUEST_PARAMETERS + 1 }, (_, i) => `p${i}=1`).join("&")],
    ["3 000 form fields", Array.from({ length: 3_000 }, (_, i) => `p${i}=1`).join("&")],
    ["17 empty form fields", "&".repeat(MAX_REQUEST_PARAMETERS)],
  ])("refuses %s by their count (request_invalid)", async (_name, body) => {
    expect(await refusalOf(await send(body))).toMatchObject({
      status: 400,
      code: "request_invalid",
      error_description: tooMany,
    });
  });

  it("counts the query string and the body together", async () => {
    const query = `?${Array.from({ length: 10 }, (_, i) => `q${i}=1`).join("&")}`;
    const body = Array.from({ length: 7 }, (_, i) => `b${i}=1`).join("&");
    expect(await refusalOf(await send(body, FORM["Content-Type"], query))).toMatchObject({
      code: "request_invalid",
      error_description: tooMany,
    });
    const longQuery = `?${Array.from({ length: 3_000 }, (_, i) => `q${i}=1`).join("&")}`;
    expect(await refusalOf(await send("", FORM["Content-Type"], longQuery))).toMatchObject({
      code: "request_invalid",
      error_description: tooMany,
    });
  });

  it("refuses a JSON object of more members than that, before JSON.parse", async () => {
    const members = Array.from({ length: MAX_REQUEST_PARAMETERS + 1 }, (_, i) => `"p${i}":"1"`).join(",");
    expect(await refusalOf(await send(`{${members}}`, "application/json"))).toMatchObject({
      code: "request_invalid",
      error_description: tooMany,
    });
  });

  it.each([
    ["a nested array", '{"scope":["a","b"]}'],
    ["a nested object", '{"format":{"json":1}}'],
    ["32 KiB of nesting", `{"a":${"[".repeat(16_000)}${"]".repeat(16_000)}}`],
  ])("refuses %s in a JSON body at its first bracket", async (_name, body) => {
    expect(await refusalOf(await send(body, "application/json"))).toMatchObject({
      code: "request_invalid",
      error_description: "The JSON body must be one object whose values are strings or numbers; nothing nested.",
    });
  });

  it("reads brackets, commas, quotes and escapes inside JSON strings as text", async () => {
    const body = JSON.stringify({ format: "json", lifetime: "120", token_file: 'a,{b}[c]"d\\' });
    // Past the count and nesting checks, the route's own check answers.
    expect(await refusalOf(await send(body, "application/json"))).toMatchObject({
      code: "request_invalid",
      error_description: "token_file is only used with format=gcloud.",
    });
    expect((await send(JSON.stringify({ format: "json", lifetime: "120" }), "application/json")).status).toBe(200);
  });
});

describe("one strict reader for every endpoint's parameters (issue 30)", () => {
  let h: Harness;
  let token: string;
  beforeAll(async () => {
    h = await createHarness();
    await h.scenario();
    token = await h.ciToken();
  });

  const refusalOf = async (res: Response) => ({
    status: res.status,
    ...((await res.json()) as { code: string; error_description: string }),
  });
  const json = (body: string, query = "") =>
    h.request(`/v1/credentials/oidc-any${query}`, {
      method: "POST",
      headers: bearer(token, { "Content-Type": "application/json" }),
      body,
    });
  const queryOf = (count: number) => `?${Array.from({ length: count }, (_, i) => `q${i}=1`).join("&")}`;
  const tooMany = (allowed: string) =>
    `The request has more than ${MAX_REQUEST_PARAMETERS} parameters; this endpoint takes at most: ${allowed}.`;

  it("counts a one-member JSON body after a full query string", async () => {
    expect(await refusalOf(await json('{"format":"json"}', queryOf(MAX_REQUEST_PARAMETERS)))).toMatchObject({
      status: 400,
      code: "request_invalid",
      error_description: tooMany("lifetime, scope, audience, format, token_file"),
    });
    // One parameter fewer is within the count: the unknown name is what is refused then.
    expect(await refusalOf(await json('{"format":"json"}', queryOf(MAX_REQUEST_PARAMETERS - 1)))).toMatchObject({
      code: "request_invalid",
      error_description: expect.stringMatching(/^Unknown parameter "q0"/),
    });
    expect(await refusalOf(await json("{}", queryOf(MAX_REQUEST_PARAMETERS)))).toMatchObject({
      code: "request_invalid",
      error_description: expect.stringMatching(/^Unknown parameter "q0"/),
    });
  });

  it.each([
    ["a repeated name", '{"format":"json","lifetime":"120","format":"env"}'],
    ["a name repeated in an escaped spelling", '{"format":"json","\\u0066ormat":"env"}'],
  ])("refuses %s in a JSON body (JSON.parse would keep the last value)", async (_name, body) => {
    expect(await refusalOf(await json(body))).toMatchObject({
      status: 400,
      code: "request_invalid",
      error_description: "Parameter format is given more than once.",
    });
  });

  it("reads a member name only where a name stands, not in a value", async () => {
    const res = await json('{"lifetime":"format", "format" : "json"}');
    expect(await refusalOf(res)).toMatchObject({
      code: "request_invalid",
      error_description: expect.stringMatching(/^lifetime must be/),
    });
    expect((await json('{ "format" : "json" , "lifetime" : 120 }')).status).toBe(200);
    // A top-level array has no names: it is refused as what it is.
    expect(await refusalOf(await json('["a","b","b"]'))).toMatchObject({
      code: "request_invalid",
      error_description: "The JSON body must be an object.",
    });
  });

  const whoami = (query: string) => h.request(`/v1/whoami${query}`, { headers: bearer(token) });

  it.each([
    ["an unknown parameter", "?taget=oidc-any", /^Unknown parameter "taget"; allowed: target\.$/],
    ["a repeated parameter", "?target=oidc-any&target=aws-readonly", /^Parameter target is given more than once\.$/],
    [
      "17 parameters",
      queryOf(MAX_REQUEST_PARAMETERS + 1),
      new RegExp(`^The request has more than ${MAX_REQUEST_PARAMETERS} parameters`),
    ],
  ])("GET /v1/whoami refuses %s (request_invalid)", async (_name, query, sentence) => {
    expect(await refusalOf(await whoami(query))).toMatchObject({
      status: 400,
      code: "request_invalid",
      error_description: expect.stringMatching(sentence),
    });
  });

  it("GET /v1/whoami still explains ?target=", async () => {
    const res = await whoami("?target=oidc-any");
    expect(res.status).toBe(200);
    expect(await res.json()).toHaveProperty("explain");
    expect((await whoami("")).status).toBe(200);
  });
});

// The shape toolkit under the policy schema: each reader refuses what it does not describe, with the
// path and the sentence a policy author sees, and passes what it does.
import { describe, expect, it } from "vitest";
import {
  bool,
  duration,
  int,
  INVALID,
  list,
  object,
  oneOf,
  str,
  tagged,
  type Ctx,
  type Mode,
  type Spec,
} from "../../../src/policy/shape-spec";

function read<T>(spec: Spec<T>, value: unknown, mode: Mode = "source") {
  const ctx: Ctx = { mode, document: "doc.yaml", problems: [] };
  const out = spec.read(value, ctx, ["at"]);
  return { out, problems: ctx.problems.map((p) => `${p.path.join(".")}: ${p.message}`) };
}

function refusal<T>(spec: Spec<T>, value: unknown, mode: Mode = "source"): string[] {
  const { out, problems } = read(spec, value, mode);
  expect(out).toBe(INVALID);
  return problems;
}

describe("str", () => {
  const name = str({ pattern: /^[a-z]+$/, expected: "lower-case letters", maxLength: 5 });

  it("passes a string of the pattern within its length", () => {
    expect(read(name, "abc")).toEqual({ out: "abc", problems: [] });
  });

  it.each([
    [7, "at: expected a string, got number 7"],
    [null, "at: expected a string, got null"],
    ["", "at: must not be empty"],
    ["abcdef", "at: must be at most 5 characters"],
    ["ab1", "at: 'ab1' is not lower-case letters"],
  ])("refuses %j", (value, problem) => {
    expect(refusal(name, value)).toEqual([problem]);
  });

  it("stores the refined spelling, or reports the refiner's problem", () => {
    const lower = str({ refine: (v) => (v.includes(" ") ? { problem: "no spaces" } : { value: v.toLowerCase() }) });
    expect(read(lower, "ABC").out).toBe("abc");
    expect(refusal(lower, "a b")).toEqual(["at: no spaces"]);
  });
});

describe("refusal messages", () => {
  it("escape the control characters of the values they quote", () => {
    expect(refusal(str({ pattern: /^a$/, expected: "a" }), "a\u001b[31m\r\nX")).toEqual([
      "at: 'a\\u001b[31m\\u000d\\u000aX' is not a",
    ]);
  });
});

describe("oneOf and bool", () => {
  it("pass only the listed values", () => {
    expect(read(oneOf(["a", "b"]), "b").out).toBe("b");
    expect(refusal(oneOf(["a", "b"]), "c")).toEqual(['at: expected one of a, b, got string "c"']);
    expect(refusal(oneOf(["a"], "only a works here"), "c")).toEqual([
      'at: expected a, got string "c": only a works here',
    ]);
    expect(read(bool(), false).out).toBe(false);
    expect(refusal(bool(), "true")).toEqual(['at: expected true or false, got string "true"']);
  });
});

describe("int and duration", () => {
  it.each([
    [2.5, "at: expected a whole number, got number 2.5"],
    ["3", 'at: expected a whole number, got string "3"'],
    [0, "at: must be between 1 and 10"],
    [11, "at: must be between 1 and 10"],
  ])("int refuses %j", (value, problem) => {
    expect(refusal(int(1, 10), value)).toEqual([problem]);
  });

  it("reads durations as seconds in sources and only seconds in snapshots", () => {
    const lifetime = duration(60, 3600);
    expect(read(lifetime, "15m").out).toBe(900);
    expect(read(lifetime, 900, "snapshot").out).toBe(900);
    expect(refusal(lifetime, "15m", "snapshot")).toEqual(['at: expected a whole number, got string "15m"']);
    expect(refusal(lifetime, "15 minutes")).toEqual([
      "at: '15 minutes' is not a duration; write seconds (900) or a number with s, m, h or d (15m)",
    ]);
    expect(refusal(lifetime, "2h")).toEqual(["at: must be between 60 and 3600"]);
  });
});

describe("list", () => {
  const names = list(str(), { min: 1, max: 2, unique: true });

  it("passes a list within its bounds", () => {
    expect(read(names, ["a", "b"]).out).toEqual(["a", "b"]);
  });

  it.each([
    ["a", 'at: expected a list, got string "a"'],
    [[], "at: must not be empty"],
    [["a", "b", "c"], "at: may have at most 2 entries"],
    [["a", "a"], 'at.1: "a" is listed twice'],
    [["a", 3], "at.1: expected a string, got number 3"],
  ])("refuses %j", (value, problem) => {
    expect(refusal(names, value)).toEqual([problem]);
  });

  it("words a minimum above one as a count", () => {
    expect(refusal(list(str(), { min: 2 }), ["a"])).toEqual(["at: needs at least 2 entries"]);
  });
});

describe("object", () => {
  const target = object<{ name: string; lifetime_seconds: number; note?: string }>({
    name: { spec: str(), required: true, doc: "" },
    lifetime: { spec: duration(60, 3600), stored: "lifetime_seconds", default: 900, doc: "" },
    note: {
      spec: str(),
      doc: "",
      refuse: (written) => (written.name === "fixed" ? "a fixed target takes no note" : undefined),
    },
  });

  it("fills defaults and stores renamed keys", () => {
    expect(read(target, { name: "a" }).out).toEqual({ name: "a", lifetime_seconds: 900 });
    expect(read(target, { name: "a", lifetime_seconds: 120 }, "snapshot").out).toEqual({
      name: "a",
      lifetime_seconds: 120,
    });
  });

  it.each([
    [["a"], "at: expected a mapping, got a list"],
    [null, "at: expected a mapping, got null"],
    [{}, "at: missing required key 'name'"],
    [{ name: "fixed", note: "hi" }, "at.note: a fixed target takes no note"],
  ])("refuses %j", (value, problem) => {
    expect(refusal(target, value)).toEqual([problem]);
  });

  it("reports an unknown key and the other problems of the same object", () => {
    expect(refusal(target, { name: 3, colour: "red" })).toEqual([
      "at.colour: unknown key 'colour'; expected one of: name, lifetime, note",
      "at.name: expected a string, got number 3",
    ]);
  });

  it("knows keys by their spelling in each mode", () => {
    // An unknown key is a problem for the document; the object itself is still read.
    expect(read(target, { name: "a", lifetime: 120 }, "snapshot").problems).toEqual([
      "at.lifetime: unknown key 'lifetime'; expected one of: name, lifetime_seconds, note",
    ]);
  });
});

describe("tagged", () => {
  const key = tagged<{ source: string }>("source", {
    fetch: { url: { spec: str(), required: true, doc: "" } },
    pushed: {},
  });

  it("reads the variant its tag names", () => {
    expect(read(key, { source: "pushed" }).out).toEqual({ source: "pushed" });
    expect(refusal(key, { source: "fetch" })).toEqual(["at: missing required key 'url'"]);
  });

  it.each([
    ["fetch", 'at: expected a mapping, got string "fetch"'],
    [{ source: "ftp" }, "at.source: 'source' must be one of fetch, pushed, got string \"ftp\""],
    [{ source: "__proto__" }, "at.source: 'source' must be one of fetch, pushed, got string \"__proto__\""],
    [{}, "at.source: 'source' must be one of fetch, pushed, got nothing"],
  ])("refuses %j", (value, problem) => {
    expect(refusal(key, value)).toEqual([problem]);
  });
});

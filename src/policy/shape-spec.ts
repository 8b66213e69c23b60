// A small toolkit for describing plain-value shapes once and getting both a strict reader (with paths
// for error messages, defaults, and a "source" vs "snapshot" mode) and a JSON Schema from it.

import { isPlainObject } from "../encoding";

export type Mode = "source" | "snapshot";
export type Path = readonly (string | number)[];

export interface Problem {
  /** File name (source mode) or "snapshot". */
  document: string;
  path: Path;
  message: string;
  /** The problem is the key itself (unknown or duplicate key), not its value. */
  atKey?: boolean;
}

export const INVALID = Symbol("invalid");
export type Out<T> = T | typeof INVALID;

export interface Ctx {
  mode: Mode;
  document: string;
  problems: Problem[];
}

export type JsonSchema = Record<string, unknown>;

export interface Spec<T> {
  read(value: unknown, ctx: Ctx, path: Path): Out<T>;
  schema(): JsonSchema;
}

export function fail(ctx: Ctx, path: Path, message: string, atKey = false): typeof INVALID {
  ctx.problems.push({ document: ctx.document, path, message: escapeControl(message), ...(atKey ? { atKey } : {}) });
  return INVALID;
}

/**
 * Messages quote what a policy wrote: a control character in it (a line break, a terminal escape
 * from a hostile merge request) must reach a log or terminal escaped, never as itself.
 */
export function escapeControl(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${typeof value} ${JSON.stringify(value)}`;
}

export interface StringOptions {
  pattern?: RegExp;
  /** Human wording of the pattern, for messages. */
  expected?: string;
  maxLength?: number;
  /** Further check: returns a problem, or the stored (canonical) spelling. */
  refine?: (value: string) => { problem: string } | { value: string };
  doc?: string;
}

export function str(options: StringOptions = {}): Spec<string> {
  const maxLength = options.maxLength ?? 512;
  return {
    read(value, ctx, path) {
      if (typeof value !== "string") return fail(ctx, path, `expected a string, got ${describe(value)}`);
      if (value.length === 0) return fail(ctx, path, "must not be empty");
      if (value.length > maxLength) return fail(ctx, path, `must be at most ${maxLength} characters`);
      if (options.pattern && !options.pattern.test(value)) {
        return fail(ctx, path, `'${value}' is not ${options.expected ?? `of the form ${options.pattern.source}`}`);
      }
      if (!options.refine) return value;
      const refined = options.refine(value);
      return "problem" in refined ? fail(ctx, path, refined.problem) : refined.value;
    },
    schema: () => ({
      type: "string",
      minLength: 1,
      maxLength,
      ...(options.pattern ? { pattern: options.pattern.source } : {}),
      ...(options.doc ? { description: options.doc } : {}),
    }),
  };
}

/** `why`, when given, is appended to the refusal: the reason the list is this short. */
export function oneOf<T extends string>(values: readonly T[], why?: string): Spec<T> {
  return {
    read(value, ctx, path) {
      if (typeof value === "string" && (values as readonly string[]).includes(value)) return value as T;
      return fail(
        ctx,
        path,
        `expected ` +
          `${values.length === 1 ? values[0] : `one of ${values.join(", ")}`}, got ${describe(value)}${why ? `: ${why}` : ""}`,
      );
    },
    schema: () => ({ enum: [...values] }),
  };
}

export function bool(): Spec<boolean> {
  return {
    read: (value, ctx, path) =>
      typeof value === "boolean" ? value : fail(ctx, path, `expected true or false, got ${describe(value)}`),
    schema: () => ({ type: "boolean" }),
  };
}

export function int(min: number, max: number): Spec<number> {
  return {
    read(value, ctx, path) {
      if (typeof value !== "number" || !Number.isInteger(value))
        return fail(ctx, path, `expected a whole number, got ${describe(value)}`);
      if (value < min || value > max) return fail(ctx, path, `must be between ${min} and ${max}`);
      return value;
    },
    schema: () => ({ type: "integer", minimum: min, maximum: max }),
  };
}

export const DURATION = /^(\d{1,6})(s|m|h|d)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds, or (in sources) a string such as `90s`, `15m`, `1h`, `1d`. Stored as seconds. */
export function duration(min: number, max: number): Spec<number> {
  const seconds = int(min, max);
  return {
    read(value, ctx, path) {
      if (typeof value === "string" && ctx.mode === "source") {
        const match = DURATION.exec(value);
        if (!match)
          return fail(
            ctx,
            path,
            `'${value}' is not a duration; write seconds (900) or a number with s, m, h or d (15m)`,
          );
        return seconds.read(Number(match[1]) * UNIT_SECONDS[match[2]!]!, ctx, path);
      }
      return seconds.read(value, ctx, path);
    },
    schema: () => ({
      oneOf: [seconds.schema(), { type: "string", pattern: DURATION.source }],
      description: `seconds, or a duration such as 15m or 1h (${min}s to ${max}s)`,
    }),
  };
}

export function list<T>(item: Spec<T>, options: { min?: number; max?: number; unique?: boolean } = {}): Spec<T[]> {
  const min = options.min ?? 0;
  const max = options.max ?? 100;
  return {
    read(value, ctx, path) {
      if (!Array.isArray(value)) return fail(ctx, path, `expected a list, got ${describe(value)}`);
      if (value.length < min) return fail(ctx, path, min === 1 ? "must not be empty" : `needs at least ${min} entries`);
      if (value.length > max) return fail(ctx, path, `may have at most ${max} entries`);
      const out: T[] = [];
      let ok = true;
      value.forEach((element, i) => {
        const read = item.read(element, ctx, [...path, i]);
        if (read === INVALID) ok = false;
        else if (options.unique && out.includes(read)) {
          fail(ctx, [...path, i], `${JSON.stringify(read)} is listed twice`);
          ok = false;
        } else out.push(read);
      });
      return ok ? out : INVALID;
    },
    schema: () => ({
      type: "array",
      items: item.schema(),
      minItems: min,
      maxItems: max,
      ...(options.unique ? { uniqueItems: true } : {}),
    }),
  };
}

export interface Field {
  spec: Spec<unknown>;
  required?: boolean;
  /** Filled in when the key is absent; a function sees the fields read so far and the mode. */
  default?: unknown;
  /** Key in the stored form when it differs (durations: `max_lifetime` → `max_lifetime_seconds`). */
  stored?: string;
  doc: string;
  /** When the key is written although the rest of the object makes it meaningless or misleading: a
   *  sentence saying why and what to do instead (undefined: allowed). Sees the object as written. */
  refuse?: (written: Record<string, unknown>, mode: Mode) => string | undefined;
  /** JSON Schema keywords merged into the enclosing object's schema to say the same to editors. */
  refuseSchema?: JsonSchema;
}

export type Fields = Record<string, Field>;

export function object<T>(fields: Fields, doc?: string): Spec<T> {
  const entries = Object.entries(fields);
  const keyOf = (mode: Mode, name: string, field: Field) => (mode === "snapshot" ? (field.stored ?? name) : name);
  const knownKeys = {
    source: new Set(entries.map(([name, field]) => keyOf("source", name, field))),
    snapshot: new Set(entries.map(([name, field]) => keyOf("snapshot", name, field))),
  };
  const refuseSchemas = entries.flatMap(([, field]) => (field.refuseSchema ? [field.refuseSchema] : []));
  return {
    read(value, ctx, path) {
      if (!isPlainObject(value)) return fail(ctx, path, `expected a mapping, got ${describe(value)}`);
      const known = knownKeys[ctx.mode];
      let ok = true;
      for (const key of Object.keys(value)) {
        // Reported, but the rest of the object is still read so its other problems show up too.
        if (!known.has(key)) {
          fail(ctx, [...path, key], `unknown key '${key}'; expected one of: ${[...known].join(", ")}`, true);
        }
      }
      const out: Record<string, unknown> = {};
      for (const [name, field] of entries) {
        const key = keyOf(ctx.mode, name, field);
        const target = field.stored ?? name;
        if (!Object.hasOwn(value, key)) {
          if (field.required) {
            fail(ctx, path, `missing required key '${key}'`);
            ok = false;
          } else if (typeof field.default === "function") {
            const computed: unknown = field.default(out, ctx.mode);
            if (computed !== undefined) out[target] = computed;
          } else if (field.default !== undefined) out[target] = structuredClone(field.default);
          continue;
        }
        // A key that must not be written here is refused whatever its value (fixing the value would not help).
        const refused = field.refuse?.(value, ctx.mode);
        if (refused !== undefined) {
          fail(ctx, [...path, key], refused, true);
          ok = false;
          continue;
        }
        const read = field.spec.read(value[key], ctx, [...path, key]);
        if (read === INVALID) ok = false;
        else out[target] = read;
      }
      return ok ? (out as T) : INVALID;
    },
    schema: () => ({
      type: "object",
      additionalProperties: false,
      ...(doc ? { description: doc } : {}),
      ...(refuseSchemas.length > 0 ? { allOf: refuseSchemas } : {}),
      properties: Object.fromEntries(
        Object.entries(fields).map(([name, field]) => [
          name,
          {
            ...field.spec.schema(),
            description: field.doc,
            ...(field.default !== undefined && typeof field.default !== "function" ? { default: field.default } : {}),
          },
        ]),
      ),
      required: Object.entries(fields)
        .filter(([, f]) => f.required)
        .map(([name]) => name),
    }),
  };
}

/** Objects told apart by one key (`type` of a target, `source` of a key set). */
export function tagged<T>(tag: string, variants: Record<string, Fields>): Spec<T> {
  const specs = Object.fromEntries(
    Object.entries(variants).map(([name, fields]) => [
      name,
      object<T>({ [tag]: { spec: oneOf([name]), required: true, doc: `${tag}: ${name}` }, ...fields }),
    ]),
  );
  const names = Object.keys(variants);
  return {
    read(value, ctx, path) {
      if (!isPlainObject(value)) return fail(ctx, path, `expected a mapping, got ${describe(value)}`);
      const kind = value[tag];
      const spec = typeof kind === "string" && Object.hasOwn(specs, kind) ? specs[kind] : undefined;
      if (!spec) return fail(ctx, [...path, tag], `'${tag}' must be one of ${names.join(", ")}, got ${describe(kind)}`);
      return spec.read(value, ctx, path);
    },
    schema: () => ({ oneOf: names.map((name) => specs[name]!.schema()) }),
  };
}

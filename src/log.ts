// Structured JSON logs, one line per event. Callers pass facts, never raw tokens or credentials:
// use token hashes (VerifiedIdentity.tokenSha256) and names instead.

export type LogLevel = "debug" | "info" | "warn" | "error";

export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  const entry = { level, event, time: new Date().toISOString(), ...fields };
  // A replacer is called for every key and takes JSON.stringify off its fast path; only a field that
  // is (or may hold) an Error needs it. A request's line holds strings and numbers only.
  const line = JSON.stringify(entry, Object.values(fields).every(isPrimitive) ? undefined : errorReplacer);
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

function isPrimitive(value: unknown): boolean {
  return value === null || (typeof value !== "object" && typeof value !== "function");
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

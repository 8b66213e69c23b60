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

/**
 * Request log lines of callers who did not authenticate (the same junk as the audit's, auditClassOf),
 * under a rate budget like their audit rows: the first `perSecond` a second are logged, the rest are
 * counted per (status, code) and logged as one `requests_folded` line once their second is over (by
 * the next request's line: no timer). So a flood costs a bounded number of log lines a second, and
 * still says how big it was. Authenticated callers' lines are always logged.
 */
export class RequestLog {
  /** Lines folded since the isolate started. */
  folded = 0;
  private second = Number.NaN;
  private linesThisSecond = 0;
  private readonly open = new Map<string, { status: number; code: string | undefined; count: number }>();
  private openSecond = Number.NaN;

  constructor(
    private readonly now: () => number,
    private readonly perSecond: number,
  ) {}

  /** Logs the request's line, or counts it when it is junk beyond this second's budget. */
  write(level: LogLevel, fields: Record<string, unknown> & { status: number; code?: string }, junk: boolean): void {
    const nowMs = this.now();
    const second = Math.floor(nowMs / 1000);
    if (this.open.size > 0 && second !== this.openSecond) this.flush();
    if (second !== this.second) {
      this.second = second;
      this.linesThisSecond = 0;
    }
    if (!junk || this.linesThisSecond < this.perSecond) {
      if (junk) this.linesThisSecond++;
      log(level, "request", fields);
      return;
    }
    const key = `${fields.status} ${fields.code ?? ""}`;
    const summary = this.open.get(key);
    if (summary) summary.count++;
    else this.open.set(key, { status: fields.status, code: fields.code, count: 1 });
    this.openSecond = second;
    this.folded++;
  }

  status() {
    return {
      lines_per_second: this.perSecond,
      folded_lines_this_isolate: this.folded,
      folded_lines_unlogged: [...this.open.values()].reduce((sum, s) => sum + s.count, 0),
    };
  }

  private flush(): void {
    const second = new Date(this.openSecond * 1000).toISOString();
    for (const { status, code, count } of this.open.values())
      log(status >= 500 ? "error" : "info", "requests_folded", { second, status, code, count });
    this.open.clear();
  }
}

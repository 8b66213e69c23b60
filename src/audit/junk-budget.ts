// The junk rate budget: how many junk audit rows (auditClassOf, audit-event.ts) an isolate stores a second and a UTC
// day, whatever D1's speed (docs/operations.md, "Audit under a
// flood"). Within a second, the first AUDIT_JUNK_ROWS_PER_SECOND junk refusals are rows of their own
// and the rest fold into that second's summary rows; within a day, once AUDIT_MAX_JUNK_ROWS_PER_DAY
// rows (own rows and summaries) are stored, further junk is only counted. Time comes from the caller
// (the injected clock), so both limits are testable without sleeping.

import { TIME } from "../limits";

export class JunkBudget {
  /** Junk refusals not stored at all since the isolate started, the day's cap being reached. */
  overDailyCap = 0;
  private overCapToday = 0;
  private second = Number.NaN;
  private rowsThisSecond = 0;
  private day = Number.NaN;
  private rowsToday = 0;

  constructor(
    private readonly rowsPerSecond: number,
    private readonly rowsPerDay: number,
  ) {}

  /** Whether a junk refusal may be a row of its own now (counts it if so). */
  admitRow(nowMs: number): boolean {
    this.roll(nowMs);
    if (this.rowsThisSecond >= this.rowsPerSecond || this.rowsToday >= this.rowsPerDay) return false;
    this.rowsThisSecond++;
    this.rowsToday++;
    return true;
  }

  /** Whether today's cap is reached: junk is then counted (overDailyCap), neither queued nor folded. */
  dayFull(nowMs: number): boolean {
    this.roll(nowMs);
    return this.rowsToday >= this.rowsPerDay;
  }

  /** Counts a junk refusal that is not stored; true for the first of the day (worth one log line). */
  countOverCap(nowMs: number): boolean {
    this.roll(nowMs);
    this.overDailyCap++;
    return this.overCapToday++ === 0;
  }

  /**
   * Summary rows count towards the day's rows (they are taken while the day is not full, so a day ends at most one
   * window's summaries over the cap).
   */
  countSummaries(rows: number, nowMs: number): void {
    this.roll(nowMs);
    this.rowsToday += rows;
  }

  status(nowMs: number) {
    this.roll(nowMs);
    return {
      junk_rows_per_second: this.rowsPerSecond,
      junk_rows_today: this.rowsToday,
      junk_rows_per_day_cap: this.rowsPerDay,
      junk_not_stored_over_daily_cap_this_isolate: this.overDailyCap,
    };
  }

  private roll(nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    if (second !== this.second) {
      this.second = second;
      this.rowsThisSecond = 0;
    }
    const day = Math.floor(nowMs / (TIME.DAY * 1000));
    if (day !== this.day) {
      this.day = day;
      this.rowsToday = 0;
      this.overCapToday = 0;
    }
  }
}

// The audit events of one class (priority or junk) waiting for an insert, as JSON rows, oldest first,
// with what they hold in memory: rows still waiting, and rows taken into a batch whose insert has not
// settled (released then). Caps are checked against what is held, so a slow D1 leaves less room.

/** Memory a string takes in V8: one byte a character, or two for all of it if any is beyond Latin-1. */
export function memoryBytes(text: string): number {
  return /[^\u0000-\u00ff]/.test(text) ? 2 * text.length : text.length;
}

export interface Held {
  events: number;
  bytes: number;
}

/** Rows of one insert statement: a JSON array of at most maxEvents rows and maxLength characters. */
export class BatchBuilder {
  readonly rows: string[] = [];
  private length = 0;

  constructor(
    private readonly maxEvents: number,
    private readonly maxLength: number,
  ) {}

  fits(row: string): boolean {
    return this.rows.length < this.maxEvents && this.length + row.length + 1 <= this.maxLength;
  }

  add(row: string): void {
    this.rows.push(row);
    this.length += row.length + 1;
  }
}

export class EventQueue {
  readonly held: Held = { events: 0, bytes: 0 };
  /** JSON length of the waiting rows (UTF-16 units, as D1's value cap counts). */
  waitingLength = 0;
  private readonly rows: string[] = [];

  get waiting(): number {
    return this.rows.length;
  }

  /** Whether a row of this many bytes can be held without going over either cap. */
  hasRoom(bytes: number, maxEvents: number, maxBytes: number): boolean {
    return this.held.events < maxEvents && this.held.bytes + bytes <= maxBytes;
  }

  push(row: string, bytes = memoryBytes(row)): void {
    this.rows.push(row);
    this.waitingLength += row.length;
    this.held.events++;
    this.held.bytes += bytes;
  }

  /** Removes the newest waiting row (to make room for a more important one). */
  popNewest(): string | undefined {
    const row = this.rows.pop();
    if (row !== undefined) {
      this.waitingLength -= row.length;
      this.release({ events: 1, bytes: memoryBytes(row) });
    }
    return row;
  }

  /** Moves waiting rows, oldest first, into the batch while they fit; they stay held until release(). */
  takeInto(batch: BatchBuilder): Held {
    let count = 0;
    let bytes = 0;
    while (count < this.rows.length && batch.fits(this.rows[count]!)) {
      const row = this.rows[count++]!;
      batch.add(row);
      bytes += memoryBytes(row);
      this.waitingLength -= row.length;
    }
    this.rows.splice(0, count);
    return { events: count, bytes };
  }

  /** Gives back what a batch held once its insert has settled (written, or logged). */
  release(taken: Held): void {
    this.held.events -= taken.events;
    this.held.bytes -= taken.bytes;
  }
}

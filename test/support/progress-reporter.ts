// Fills the silences of a run outside a terminal (CI, a pipe). There Vitest's default reporter prints
// a file's results only when the file ends, and the slowest files take 30-60 s (minutes on a loaded
// machine), so a run could print nothing for that long. When no file has ended for 15 s this prints
// one line naming the files under way, and again every 15 s of silence. In a terminal the default
// reporter already shows the files under way, and this prints nothing.
import type { Reporter, TestModule, TestSpecification, Vitest } from "vitest/node";

const SILENCE_MS = 15_000;

export default class ProgressReporter implements Reporter {
  private vitest: Vitest | undefined;
  /** Files under way: path → when it started. */
  private readonly running = new Map<string, number>();
  private total = 0;
  private ended = 0;
  private lastOutput = 0;
  private timer: ReturnType<typeof setInterval> | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunStart(specifications: ReadonlyArray<TestSpecification>): void {
    if (process.stdout.isTTY) return;
    this.total = specifications.length;
    this.lastOutput = Date.now();
    this.timer = setInterval(() => this.reportIfSilent(), 1_000);
    this.timer.unref();
  }

  onTestModuleQueued(module: TestModule): void {
    this.running.set(module.relativeModuleId, Date.now());
  }

  onTestModuleEnd(module: TestModule): void {
    this.running.delete(module.relativeModuleId);
    this.ended++;
    this.lastOutput = Date.now();
  }

  onTestRunEnd(): void {
    clearInterval(this.timer);
  }

  private reportIfSilent(): void {
    const now = Date.now();
    if (now - this.lastOutput < SILENCE_MS || this.running.size === 0) return;
    this.lastOutput = now;
    const files = [...this.running].map(([file, since]) => `${file} (${Math.round((now - since) / 1000)} s)`);
    this.vitest?.logger.log(`   … ${this.ended} of ${this.total} files done; running ${files.join(", ")}`);
  }
}

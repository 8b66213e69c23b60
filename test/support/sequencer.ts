// The order test files start in, for a short run on two cores and output within seconds:
//  1. one quick file per worker first: Vitest prints a file's results when the file ends, and the
//     slowest files take 30-60 s (minutes on a loaded machine), so a run that began with them printed
//     nothing for that long;
//  2. then the rest slowest first, which packs the files onto the workers best (the run ends about
//     when the slowest file would, instead of one long file starting last).
// A file's expected duration is its last run's (Vitest's results cache, node_modules/.vite). A file
// never run (a fresh clone, as in CI) is ranked by its project: Node files start wrangler and take
// 1-45 s, worker files take under 7 s; the larger file first.
import { statSync } from "node:fs";
import path from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

const UNKNOWN_MS: Record<string, number> = { node: 10_000, worker: 1_000 };

export class QuickThenSlowestSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const ranked = files.map((spec) => ({
      spec,
      expectedMs: this.expectedMs(spec),
      size: statSync(spec.moduleId).size,
    }));
    ranked.sort((a, b) => b.expectedMs - a.expectedMs || b.size - a.size);
    const quick = ranked.length > 2 * this.workers() ? ranked.splice(-this.workers()).reverse() : [];
    return [...quick, ...ranked].map(({ spec }) => spec);
  }

  private expectedMs(spec: TestSpecification): number {
    const key = `${spec.project.name}:${path.relative(this.ctx.config.root, spec.moduleId)}`;
    return this.ctx.cache.getFileTestResults(key)?.duration ?? UNKNOWN_MS[spec.project.name] ?? 1_000;
  }

  private workers(): number {
    return Math.max(1, Math.floor(Number(this.ctx.config.maxWorkers) || 1));
  }
}

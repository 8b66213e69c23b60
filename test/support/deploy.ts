// What `wrangler deploy` would upload, without an account: `wrangler deploy --dry-run` bundles the
// Worker as for a deploy and prints its size and the bindings it would get.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { wrangler } from "../../cli/wrangler";

const ROOT = path.resolve(import.meta.dirname, "../..");

export interface DryRunDeploy {
  /** wrangler's "Total Upload" figures, in KiB. */
  uploadKiB: number;
  gzipKiB: number;
  /** wrangler's printed output (the bindings table included). */
  output: string;
}

export async function dryRunDeploy(): Promise<DryRunDeploy> {
  const outdir = await mkdtemp(path.join(tmpdir(), "gatepass-deploy-"));
  try {
    const output = await wrangler(["deploy", "--dry-run", "--outdir", outdir], { cwd: ROOT });
    const size = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
    if (!size) throw new Error(`wrangler deploy --dry-run printed no upload size:\n${output}`);
    return { uploadKiB: Number(size[1]), gzipKiB: Number(size[2]), output };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

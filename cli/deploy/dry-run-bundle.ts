// `gatepass deploy --dry-run`, last step: the Worker bundles, and which bindings it would get.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { wrangler } from "../wrangler";

export async function dryRunBundle(flags: string[]): Promise<string> {
  const outdir = await mkdtemp(path.join(tmpdir(), "gatepass-bundle-"));
  try {
    const output = await wrangler(["deploy", "--dry-run", "--outdir", outdir, ...flags]);
    const size = /Total Upload: ([\d.]+ KiB) \/ gzip: ([\d.]+ KiB)/.exec(output);
    // wrangler's table of what the Worker would get: KV, D1, rate limiter and vars, one `env.NAME` per line.
    const bindings = [...output.matchAll(/^env\.(\w+)/gm)].map((match) => match[1]);
    return `${size ? `${size[1]} (gzip ${size[2]})` : "bundled"}; bindings ${bindings.join(", ") || "none"}`;
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

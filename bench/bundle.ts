// `npm run bench -- bundle`: the Worker bundle `wrangler deploy --dry-run` would upload.
// Target: ≤ 150 KiB gzip (test/node/deploy.test.ts fails past it).
import { dryRunDeploy } from "../test/support/deploy";

export const GZIP_TARGET_KIB = 150;

export async function run(): Promise<void> {
  const { uploadKiB, gzipKiB } = await dryRunDeploy();
  console.log(
    `bundle (wrangler deploy --dry-run): ${uploadKiB} KiB, ${gzipKiB} KiB gzip (target ≤ ${GZIP_TARGET_KIB} KiB gzip) ${gzipKiB <= GZIP_TARGET_KIB ? "OK" : "OVER TARGET"}`,
  );
}

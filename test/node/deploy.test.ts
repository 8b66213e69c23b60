// What a deploy ships: wrangler.toml as committed must never put a deployed Worker in development
// mode (http:// issuers on loopback, ephemeral signing keys), and the bundle stays within its target.
import { experimental_readRawConfig } from "wrangler";
import { describe, expect, it } from "vitest";
import { GZIP_TARGET_KIB } from "../../bench/bundle";
import { readConfig, type Env } from "../../src/config";
import { dryRunDeploy } from "../support/deploy";

const shippedVars = () => experimental_readRawConfig({ config: "wrangler.toml" }).rawConfig.vars as Record<string, string>;

describe("wrangler.toml as committed", () => {
  it("sets no GATEPASS_ENV, so a deployed Worker runs in production mode", () => {
    expect(shippedVars()).not.toHaveProperty("GATEPASS_ENV");
  });

  it("is refused as it stands (config_invalid): a deploy that forgot to set its https:// GATEPASS_ISSUER serves nothing", () => {
    let refusal: unknown;
    try {
      readConfig({ ...shippedVars() } as unknown as Env);
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toMatchObject({ code: "config_invalid", cause: expect.objectContaining({ message: expect.stringContaining('GATEPASS_ISSUER is "http://127.0.0.1:8787"') }) });
  });

  it("runs locally with what `npm run dev` adds to .dev.vars", () => {
    expect(readConfig({ ...shippedVars(), GATEPASS_ENV: "development" } as unknown as Env)).toMatchObject({ issuerUrl: "http://127.0.0.1:8787", development: true });
  });
});

describe("wrangler deploy --dry-run", () => {
  it(`bundles the Worker within ${GZIP_TARGET_KIB} KiB gzip, with no development-mode var`, async () => {
    const { gzipKiB, output } = await dryRunDeploy();
    expect(gzipKiB).toBeGreaterThan(0);
    expect(gzipKiB).toBeLessThanOrEqual(GZIP_TARGET_KIB);
    expect(output).toContain("env.GATEPASS_ISSUER");
    expect(output).not.toContain("GATEPASS_ENV");
  });
});

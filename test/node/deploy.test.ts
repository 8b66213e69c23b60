// What a deploy ships: wrangler.toml as committed must never put a deployed Worker in development
// mode (http:// issuers on loopback, ephemeral signing keys), names its resources without ids (wrangler
// provisions them), and the bundle stays within its target. (deploy-cli.test.ts: the deploy's steps.)
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { experimental_readRawConfig } from "wrangler";
import { describe, expect, it, vi } from "vitest";
import { GZIP_TARGET_KIB } from "../../bench/bundle";
import { deploy } from "../../cli/commands/deploy";
import { readConfig, type Env } from "../../src/config";

const ROOT = path.resolve(import.meta.dirname, "../..");

const shippedVars = () =>
  experimental_readRawConfig({ config: "wrangler.toml" }).rawConfig.vars as Record<string, string>;

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
    expect(refusal).toMatchObject({
      code: "config_invalid",
      cause: expect.objectContaining({
        message: expect.stringContaining('GATEPASS_ISSUER is "http://127.0.0.1:8787"'),
      }),
    });
  });

  it("names its KV namespaces and D1 database without ids: nothing to copy by hand (wrangler provisions them on deploy)", () => {
    const { kv_namespaces, d1_databases } = experimental_readRawConfig({ config: "wrangler.toml" }).rawConfig;
    expect(kv_namespaces).toEqual([{ binding: "JWKS" }, { binding: "POLICIES" }]);
    expect(d1_databases).toEqual([{ binding: "DB", database_name: "gatepass", migrations_dir: "migrations" }]);
  });

  it("runs locally with what `npm run dev` adds to .dev.vars", () => {
    expect(readConfig({ ...shippedVars(), GATEPASS_ENV: "development" } as unknown as Env)).toMatchObject({
      issuerUrl: "http://127.0.0.1:8787",
      development: true,
    });
  });
});

describe("gatepass deploy --dry-run (wrangler deploy --dry-run, no account needed)", () => {
  it(`checks the config and policies, and bundles the Worker within ${GZIP_TARGET_KIB} KiB gzip with its bindings and no development-mode var`, async () => {
    // wrangler.toml as committed, with an https:// issuer (as an operator sets it), next to it so its paths hold.
    const config = path.join(ROOT, `wrangler.dry-run-${process.pid}.toml`);
    await writeFile(
      config,
      (await readFile(path.join(ROOT, "wrangler.toml"), "utf8")).replace(
        'GATEPASS_ISSUER = "http://127.0.0.1:8787"',
        'GATEPASS_ISSUER = "https://gatepass.example.com"',
      ),
    );
    let stdout = "";
    const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
    let code: number;
    try {
      code = await deploy(["--dry-run", "--config", config, "--dir", path.join(ROOT, "policies")], {
        fetch,
        sleep: async () => {},
        now: Date.now,
      });
    } finally {
      write.mockRestore();
      await rm(config, { force: true });
    }
    expect(code, stdout).toBe(0);
    expect(stdout).toContain("  ✓ 1/3 configuration: worker gatepass, GATEPASS_ISSUER https://gatepass.example.com\n");
    expect(stdout).toMatch(/ {2}✓ 2\/3 policies: \d+ issuers, \d+ targets, \d+ rules .*; \d+\/\d+ tests pass/);
    const bundle =
      / {2}✓ 3\/3 bundle \(wrangler deploy --dry-run\): ([\d.]+) KiB \(gzip ([\d.]+) KiB\); bindings (.*)\n/.exec(
        stdout,
      );
    expect(bundle, stdout).not.toBeNull();
    const [uploadKiB, gzipKiB] = [Number(bundle![1]), Number(bundle![2])];
    expect(gzipKiB).toBeGreaterThan(0);
    expect(gzipKiB).toBeLessThanOrEqual(GZIP_TARGET_KIB);
    // The README's figure (the one `npm run bench -- bundle` prints) stays within 10% of the bundle.
    const readme = /^\| Worker bundle \| ([\d.]+) KiB, ([\d.]+) KiB gzip \|$/m.exec(
      await readFile(path.join(ROOT, "README.md"), "utf8"),
    );
    expect(readme, "README.md's `| Worker bundle | N KiB, N KiB gzip |` row").not.toBeNull();
    expect(
      Math.abs(Number(readme![1]) - uploadKiB) / uploadKiB,
      `README says ${readme![1]} KiB, the bundle is ${uploadKiB} KiB`,
    ).toBeLessThanOrEqual(0.1);
    expect(
      Math.abs(Number(readme![2]) - gzipKiB) / gzipKiB,
      `README says ${readme![2]} KiB gzip, the bundle is ${gzipKiB} KiB gzip`,
    ).toBeLessThanOrEqual(0.1);
    const bindings = bundle![3]!.split(", ");
    expect(bindings).toEqual(expect.arrayContaining(["JWKS", "POLICIES", "DB", "RATE_LIMITER", "GATEPASS_ISSUER"]));
    expect(bindings).not.toContain("GATEPASS_ENV");
  });
});

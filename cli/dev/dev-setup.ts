// What `gatepass dev` prepares before `wrangler dev` starts, idempotent: .dev.vars (a local signing
// key, an admin token, GATEPASS_ENV=development), the stand-in issuers' key, the D1 migrations, the
// policies and the stand-ins' keys pushed into local storage (in this process, through Miniflare:
// cli/local-storage.ts).

import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { closeLocalStorage, wrangler } from "../wrangler";
import { mustSucceed } from "./in-process-commands";
import { pushPoliciesUnlessActive } from "./local-policy-push";
import { step } from "./progress-line";
import { DEV_DIR, ensureIssuerKey, ISSUER_JWKS_FILE, LOCAL_GITHUB_ISSUER, LOCAL_ISSUER } from "./stand-in-issuers";
import { keepOnlyForwarders } from "./wrangler-dev-child";

/** Everything `npm run dev` needs, idempotent. */
export async function prepareLocalState(): Promise<void> {
  await mkdir(DEV_DIR, { recursive: true });
  await ensureDevVars();
  const jwks = await ensureIssuerKey();
  await writeFile(ISSUER_JWKS_FILE, JSON.stringify(jwks, null, 2));
  if (await migrationsPending()) {
    step("applying D1 migrations (local)");
    await wrangler(["d1", "migrations", "apply", "DB", "--local"]);
  } else step("D1 migrations: all applied (local)");
  await pushPoliciesUnlessActive();
  // One key serves both stand-ins, pushed one after the other into the same local state.
  for (const issuer of [LOCAL_ISSUER.name, LOCAL_GITHUB_ISSUER.name]) {
    step(`pushing the ${issuer} keys (local)`);
    await mustSucceed("jwks", ["push", "--issuer", issuer, "--file", ISSUER_JWKS_FILE, "--local"]);
  }
  // wrangler dev opens the state next: this process lets go of it (and of Miniflare's signal handlers).
  await closeLocalStorage();
  keepOnlyForwarders();
}

/**
 * Whether a migration file has no row in d1_migrations, wrangler's own record of applied migrations
 * (a missing table: nothing applied yet). wrangler applies them; this only spares starting it.
 */
async function migrationsPending(): Promise<boolean> {
  const files = (await readdir("migrations")).filter((name) => name.endsWith(".sql"));
  let applied: Set<string>;
  try {
    const output = await wrangler([
      "d1",
      "execute",
      "DB",
      "--local",
      "--json",
      "--command",
      "SELECT name FROM d1_migrations",
    ]);
    applied = new Set((JSON.parse(output) as [{ results: { name: string }[] }])[0].results.map((row) => row.name));
  } catch {
    return true;
  }
  return files.some((name) => !applied.has(name));
}

async function ensureDevVars(): Promise<void> {
  const file = ".dev.vars";
  const read = async () => (existsSync(file) ? await readFile(file, "utf8") : "");
  const has = async (name: string) => new RegExp(`^${name}=`, "m").test(await read());
  const append = async (line: string) =>
    writeFile(file, `${(await read()).replace(/\n?$/, "\n")}${line}\n`, { mode: 0o600 });
  if (!(await has("GATEPASS_SIGNING_KEYS"))) {
    step("generating a local signing key into .dev.vars");
    await mustSucceed("keys", ["generate", "--dev-vars", file]);
  }
  if (!(await has("GATEPASS_ADMIN_TOKEN"))) {
    step("generating a local admin token into .dev.vars");
    await append(
      `GATEPASS_ADMIN_TOKEN=${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}`,
    );
  }
  // Local runs only: wrangler.toml leaves it out, so a deployed Worker never runs in development mode.
  if (!(await has("GATEPASS_ENV"))) await append("GATEPASS_ENV=development");
}

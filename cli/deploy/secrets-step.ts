// `gatepass deploy` steps 3 and 4: which secrets the Worker lacks, and the value to set for each: from
// the operator's file when an earlier run saved it there, else generated and saved there first.

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { parseSigningKeySecret } from "../../src/signing-keys/signing-key-secret";
import { generateSecret, serializeSecret } from "../../src/signing-keys/signing-key-rotation";
import { checkSecretDir, readOwnSecretFile, SecretFileError } from "../secret-files";
import { wrangler } from "../wrangler";
import { createPrivateFile } from "../commands/keys";
import { StepFailure } from "./deploy-step";

export const SIGNING_KEYS = "GATEPASS_SIGNING_KEYS";
export const ADMIN_TOKEN = "GATEPASS_ADMIN_TOKEN";
export type SecretName = typeof SIGNING_KEYS | typeof ADMIN_TOKEN;

/** Where the operator keeps the secrets: --secrets-dir, or one file per secret. */
export type SecretFiles = { dir?: string; [SIGNING_KEYS]?: string; [ADMIN_TOKEN]?: string };

/** Names of the secrets the Worker has; none when the Worker does not exist yet (first deploy). */
export async function liveSecrets(flags: string[]): Promise<Set<string>> {
  let output: string;
  try {
    output = await wrangler(["secret", "list", "--format", "json", ...flags]);
  } catch (err) {
    if (/not found\.\s+If this is a new Worker/.test(err instanceof Error ? err.message : "")) return new Set();
    throw err;
  }
  const json = output.slice(output.indexOf("["), output.lastIndexOf("]") + 1);
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch {
    throw new StepFailure(`wrangler secret list printed no JSON list:\n${output}`);
  }
  if (!Array.isArray(list)) throw new StepFailure(`wrangler secret list printed no JSON list:\n${output}`);
  return new Set(
    list.map((entry) => (entry as { name?: unknown }).name).filter((name): name is string => typeof name === "string"),
  );
}

export function secretFile(files: SecretFiles, name: SecretName, workerName: string): string | undefined {
  if (files[name]) return files[name];
  if (!files.dir) return undefined;
  // Named by Worker: one directory can hold the secrets of several environments without mixing them up.
  return path.join(files.dir, name === SIGNING_KEYS ? `${workerName}.signing-keys.json` : `${workerName}.admin-token`);
}

/**
 * The value to set for a secret the Worker lacks: from its file when an earlier run saved it there
 * (and stopped before setting it), else newly generated and saved first, so the operator's copy
 * exists before Cloudflare has the secret (Cloudflare secrets cannot be read back).
 */
export async function secretToSet(
  name: SecretName,
  file: string | undefined,
): Promise<{ value: string; note: string }> {
  if (!file) {
    const flag = name === SIGNING_KEYS ? "--signing-keys-file" : "--admin-token-file";
    throw new StepFailure(
      `the Worker has no ${name}, and a new one needs a file to be kept in (it cannot be read back from ` +
        `Cloudflare): add --secrets-dir DIR (or ${flag} FILE)`,
    );
  }
  // Whatever is found there is uploaded as the Worker's secret: it must be the operator's own (cli/secret-files.ts).
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let existing: string | undefined;
  try {
    await checkSecretDir(dir);
    existing = await readOwnSecretFile(file);
  } catch (err) {
    if (err instanceof SecretFileError) throw new StepFailure(`${err.message}; nothing was uploaded`);
    throw err;
  }
  if (existing !== undefined) {
    const value = existing.trim();
    const problem = secretProblem(name, value);
    if (problem)
      throw new StepFailure(
        `${file} exists but ${problem}; it was left as it is: move it away, or choose another --secrets-dir`,
      );
    return { value, note: `${name} from ${file} (saved by an earlier run)` };
  }
  const value =
    name === SIGNING_KEYS
      ? serializeSecret(await generateSecret(["ES256", "RS256"], Math.floor(Date.now() / 1000)))
      : newAdminToken();
  await createPrivateFile(file, `${value}\n`);
  return { value, note: `${name} generated into ${file} (mode 0600)` };
}

function secretProblem(name: SecretName, value: string): string | undefined {
  if (name === ADMIN_TOKEN)
    return /^[A-Za-z0-9_-]{32,}$/.test(value) ? undefined : "does not hold an admin token (32+ base64url characters)";
  try {
    parseSigningKeySecret(value);
    return undefined;
  } catch (err) {
    return `does not hold a signing key secret (${err instanceof Error ? err.message : String(err)})`;
  }
}

/** 256 random bits, base64url (as `npm run dev` makes the local one). */
function newAdminToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

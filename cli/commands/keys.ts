// `gatepass keys`: produce and rotate GATEPASS_SIGNING_KEYS (format: docs/issuer.md).
// Cloudflare secrets are write-only, so the operator keeps a copy (`generate --out FILE`); rotation
// reads the current secret from that copy (a file or stdin), sets the new one with wrangler, and
// only once wrangler succeeded replaces the copy — a failed upload leaves the operator's files alone.

import { chmod, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseSigningKeySecret, SIGNING_ALGS, type SigningAlg } from "../../src/signing-keys/signing-key-secret";
import {
  addAlgorithms,
  generateSecret,
  rotateSecret,
  serializeSecret,
} from "../../src/signing-keys/signing-key-rotation";
import { USAGE } from "../help";
import { wrangler } from "../wrangler";

export const usage = USAGE.keys;

const SECRET_NAME = "GATEPASS_SIGNING_KEYS";
const DEFAULT_DEV_VARS = ".dev.vars";

export async function run(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === "generate") return generate(rest);
  if (command === "rotate") return changeSecret("rotate", rest);
  if (command === "add") return changeSecret("add", rest);
  process.stderr.write(`usage:\n${usage}\n`);
  return 2;
}

async function generate(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      // RS256 too by default: Entra ID accepts only RSA-signed assertions, and a secret without an
      // RS256 key would leave every azure target answering signing_unavailable.
      alg: { type: "string", default: "ES256,RS256" },
      "dev-vars": { type: "string" },
      out: { type: "string" },
      force: { type: "boolean", default: false },
    },
  });
  const algs = parseAlgs(values.alg!);
  if (!algs) return 2;
  if (values.out !== undefined && values["dev-vars"] !== undefined) {
    process.stderr.write("gatepass keys generate: choose --out or --dev-vars, not both\n");
    return 2;
  }
  if (values.out === "" || values.out === "-") {
    process.stderr.write("gatepass keys generate: --out takes a file name (without --out the secret is printed)\n");
    return 2;
  }
  // ES256 is the default signer and is always present (the secret requires it).
  const secret = await generateSecret([...new Set<SigningAlg>(["ES256", ...algs])], nowSeconds());
  const text = serializeSecret(secret);
  if (values["dev-vars"]) {
    await writeDevVars(values["dev-vars"], text);
    process.stderr.write(`gatepass keys: wrote ${SECRET_NAME} (${describe(text)}) to ${values["dev-vars"]}\n`);
  } else if (values.out !== undefined) {
    const out = values.out;
    try {
      await writePrivateFile(out, `${text}\n`, { overwrite: values.force });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      process.stderr.write(
        `gatepass keys generate: ${out} already exists; it may hold a secret you still need. Choose another file, ` +
          `or add --force to replace it\n`,
      );
      return 1;
    }
    process.stderr.write(
      `gatepass keys: wrote ${SECRET_NAME} (${describe(text)}) to ${out} (mode 0600).\n` +
        `Keep ${out} in your secret store: Cloudflare secrets cannot be read back, and \`gatepass keys rotate ` +
        `--remote --from ${out}\` needs it.\n` +
        `Set it: npx wrangler secret put ${SECRET_NAME} < ${out}\n`,
    );
  } else {
    process.stdout.write(`${text}\n`);
    process.stderr.write(
      "gatepass keys: keep a copy of this secret (or use --out FILE): Cloudflare secrets cannot be read back, and " +
        "rotation needs it\n",
    );
  }
  return 0;
}

/** --alg: ES256 and/or RS256, comma-separated; undefined (after saying why) otherwise. */
function parseAlgs(value: string): SigningAlg[] | undefined {
  const algs = value.split(",").map((a) => a.trim().toUpperCase());
  if (algs.length === 0 || algs.some((a) => !(SIGNING_ALGS as readonly string[]).includes(a))) {
    process.stderr.write(`gatepass keys: --alg takes ES256 and/or RS256 (got ${value})\n`);
    return undefined;
  }
  return algs as SigningAlg[];
}

/**
 * `keys rotate` and `keys add`: read the live secret (.dev.vars, or the operator's copy for
 * --remote), change it, and store it where it came from.
 */
async function changeSecret(command: "rotate" | "add", args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      local: { type: "boolean", default: false },
      remote: { type: "boolean", default: false },
      env: { type: "string" },
      "dev-vars": { type: "string", default: DEFAULT_DEV_VARS },
      from: { type: "string", default: "-" },
      out: { type: "string" },
      force: { type: "boolean", default: false }, // rotate only
      alg: { type: "string" }, // add only
    },
  });
  if (values.local === values.remote) {
    process.stderr.write(`gatepass keys ${command}: choose --local or --remote\n`);
    return 2;
  }
  const misuse =
    command === "rotate"
      ? values.alg !== undefined && "rotation covers every algorithm the secret has (--alg belongs to `keys add`)"
      : (values.force && "--force belongs to `keys rotate`") ||
        (values.alg === undefined && "name the algorithm to add, e.g. --alg RS256");
  if (misuse) {
    process.stderr.write(`gatepass keys ${command}: ${misuse}\n`);
    return 2;
  }
  const algs = values.alg === undefined ? undefined : parseAlgs(values.alg);
  if (command === "add" && !algs) return 2;
  const current = values.local ? await readDevVarsSecret(values["dev-vars"]!) : await readSource(values.from!);
  const done = command === "rotate" ? "rotated" : "added keys to";
  let changed: string;
  try {
    const [secret, now] = [parseSigningKeySecret(current), nowSeconds()];
    changed = serializeSecret(
      command === "add"
        ? await addAlgorithms(secret, algs!, now)
        : await rotateSecret(secret, now, { force: values.force }),
    );
  } catch (err) {
    process.stderr.write(`gatepass keys ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  if (values.local) {
    await writeDevVars(values["dev-vars"]!, changed);
    process.stderr.write(
      `gatepass keys: ${done} ${SECRET_NAME} in ${values["dev-vars"]} (${describe(changed)}); restart wrangler dev\n`,
    );
    return 0;
  }
  // The operator's copy must match what the Worker has. So --out (possibly the --from file) is replaced
  // only after wrangler succeeded: were it written first, a failed upload would leave a changed copy
  // the Worker never got, and the next rotation would promote a key no relying party has seen and
  // drop the live signer. The new copy is staged next to --out beforehand (a full disk or missing
  // directory fails here, before the upload) and renamed into place afterwards (atomic).
  const from = values.from === "-" ? "stdin" : values.from!;
  const out = values.out;
  const staged = out ? await stagePrivateFile(out, `${changed}\n`) : undefined;
  const flags = values.env ? ["--env", values.env] : [];
  try {
    await wrangler(["secret", "put", SECRET_NAME, ...flags], { input: changed });
  } catch (err) {
    if (staged) await rm(staged, { force: true });
    process.stderr.write(
      `gatepass keys ${command}: ${err instanceof Error ? err.message : String(err)}\n` +
        `gatepass keys ${command}: setting ${SECRET_NAME} failed, so the new secret was discarded and no file was ` +
        `changed` +
        `${out ? ` (${out} is as it was)` : ""}: the secret from ${from} is still the one to keep. Fix the cause ` +
        `and run the same command again.\n`,
    );
    return 1;
  }
  if (out && staged) {
    try {
      await rename(staged, out);
    } catch (err) {
      process.stderr.write(
        `gatepass keys ${command}: ${SECRET_NAME} was set, but moving the new secret to ${out} failed ` +
          `(${err instanceof Error ? err.message : String(err)}); it is in ${staged} — keep that file, it is the ` +
          `secret the Worker now has\n`,
      );
      return 1;
    }
  } else {
    process.stdout.write(`${changed}\n`);
  }
  process.stderr.write(
    `gatepass keys: ${done} ${SECRET_NAME} (${describe(changed)}) and set it with wrangler; ` +
      `${out ? `${out} holds` : "stdout has"} the new secret — keep it for the next rotation\n`,
  );
  return 0;
}

/**
 * Writes a file only its owner can read. Without overwrite an existing file is refused (EEXIST),
 * atomically; with it the file is replaced by a rename, so it never holds the secret with other modes.
 */
async function writePrivateFile(file: string, text: string, { overwrite }: { overwrite: boolean }): Promise<void> {
  if (overwrite) await rename(await stagePrivateFile(file, text), file);
  else await createPrivateFile(file, text);
}

/** A new mode-0600 file holding text, next to file (same filesystem, so it can be renamed onto it). */
async function stagePrivateFile(file: string, text: string): Promise<string> {
  const staged = path.join(path.dirname(file), `.${path.basename(file)}.${crypto.randomUUID()}.tmp`);
  await createPrivateFile(staged, text);
  return staged;
}

/** Creates file (never an existing one) with mode 0600 and text; nothing is left behind on failure. */
export async function createPrivateFile(file: string, text: string): Promise<void> {
  const handle = await open(file, "wx", 0o600);
  try {
    await handle.chmod(0o600); // the umask cannot widen 0600, but be explicit
    await handle.writeFile(text);
  } catch (err) {
    await handle.close();
    await rm(file, { force: true });
    throw err;
  }
  await handle.close();
}

/** Kids and states, never key material. */
function describe(text: string): string {
  return parseSigningKeySecret(text)
    .keys.map((k) => `${k.alg} ${k.status} ${k.kid.slice(0, 8)}…`)
    .join(", ");
}

async function readSource(source: string): Promise<string> {
  if (source !== "-") return readFile(source, "utf8");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

// .dev.vars is read by wrangler with dotenv rules: a single-quoted value is taken literally, and the
// secret's JSON contains no single quote.
const LINE = new RegExp(`^${SECRET_NAME}=.*$`, "m");

async function readDevVarsSecret(file: string): Promise<string> {
  const text = existsSync(file) ? await readFile(file, "utf8") : "";
  const line = LINE.exec(text)?.[0];
  if (!line) throw new Error(`${file} has no ${SECRET_NAME}; run \`gatepass keys generate --dev-vars ${file}\``);
  return line.slice(SECRET_NAME.length + 1).replace(/^'(.*)'$/, "$1");
}

async function writeDevVars(file: string, secret: string): Promise<void> {
  const text = existsSync(file) ? await readFile(file, "utf8") : "";
  const line = `${SECRET_NAME}='${secret}'`;
  const updated = LINE.test(text)
    ? text.replace(LINE, () => line)
    : `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${line}\n`;
  await writeFile(file, updated, { mode: 0o600 });
  await chmod(file, 0o600);
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

// `gatepass keys`: produce and rotate GATEPASS_SIGNING_KEYS (format: docs/issuer.md).
// Cloudflare secrets are write-only, so rotation reads the current secret from the operator's copy
// (a file or stdin), writes the rotated one where the operator keeps it, then sets it with wrangler.

import { chmod, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseSigningKeySecret, SIGNING_ALGS, type SigningAlg } from "../../src/mint/keys";
import { generateSecret, rotateSecret, serializeSecret } from "../../src/mint/rotation";
import { wrangler } from "../wrangler";

export const usage = `  keys generate [--alg ES256[,RS256]] [--dev-vars FILE]
                                    new signing key secret (current + next key per alg); printed, or written to FILE
  keys rotate --local [--dev-vars FILE] [--force]
  keys rotate --remote [--env NAME] [--from FILE|-] [--out FILE] [--force]
                                    promote next → current, current → previous, add a new next;
                                    --remote reads the current secret from FILE/stdin and sets it with wrangler`;

const SECRET_NAME = "GATEPASS_SIGNING_KEYS";
const DEFAULT_DEV_VARS = ".dev.vars";

export async function run(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === "generate") return generate(rest);
  if (command === "rotate") return rotate(rest);
  process.stderr.write(`usage:\n${usage}\n`);
  return 2;
}

async function generate(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { alg: { type: "string", default: "ES256" }, "dev-vars": { type: "string" } } });
  const algs = values.alg!.split(",").map((a) => a.trim().toUpperCase());
  const unknown = algs.filter((a) => !(SIGNING_ALGS as readonly string[]).includes(a));
  if (unknown.length > 0 || algs.length === 0) {
    process.stderr.write(`gatepass keys: --alg takes ES256 and/or RS256 (got ${values.alg})\n`);
    return 2;
  }
  // ES256 is the default signer and is always present (the secret requires it).
  const secret = await generateSecret([...new Set<SigningAlg>(["ES256", ...(algs as SigningAlg[])])], nowSeconds());
  const text = serializeSecret(secret);
  if (values["dev-vars"]) {
    await writeDevVars(values["dev-vars"], text);
    process.stderr.write(`gatepass keys: wrote ${SECRET_NAME} (${describe(text)}) to ${values["dev-vars"]}\n`);
  } else {
    process.stdout.write(`${text}\n`);
  }
  return 0;
}

async function rotate(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      local: { type: "boolean", default: false },
      remote: { type: "boolean", default: false },
      env: { type: "string" },
      "dev-vars": { type: "string", default: DEFAULT_DEV_VARS },
      from: { type: "string", default: "-" },
      out: { type: "string" },
      force: { type: "boolean", default: false },
    },
  });
  if (values.local === values.remote) {
    process.stderr.write("gatepass keys rotate: choose --local or --remote\n");
    return 2;
  }
  const current = values.local ? await readDevVarsSecret(values["dev-vars"]!) : await readSource(values.from!);
  let rotated: string;
  try {
    rotated = serializeSecret(await rotateSecret(parseSigningKeySecret(current), nowSeconds(), { force: values.force }));
  } catch (err) {
    process.stderr.write(`gatepass keys rotate: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  if (values.local) {
    await writeDevVars(values["dev-vars"]!, rotated);
    process.stderr.write(`gatepass keys: rotated ${SECRET_NAME} in ${values["dev-vars"]} (${describe(rotated)}); restart wrangler dev\n`);
    return 0;
  }
  // Keep the operator's copy first: if wrangler fails, the new secret is not lost.
  if (values.out) {
    await writeFile(values.out, `${rotated}\n`, { mode: 0o600 });
    await chmod(values.out, 0o600);
  } else {
    process.stdout.write(`${rotated}\n`);
  }
  const flags = values.env ? ["--env", values.env] : [];
  await wrangler(["secret", "put", SECRET_NAME, ...flags], { input: rotated });
  process.stderr.write(`gatepass keys: rotated ${SECRET_NAME} (${describe(rotated)}) and set it with wrangler; keep the new secret for the next rotation\n`);
  return 0;
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
  const updated = LINE.test(text) ? text.replace(LINE, () => line) : `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${line}\n`;
  await writeFile(file, updated, { mode: 0o600 });
  await chmod(file, 0o600);
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

// `gatepass jwks push`: store the public keys of a private issuer (keys: { source: pushed }) in KV
// `JWKS` through wrangler. The key set gets exactly the validation of the admin endpoint
// (PUT /v1/admin/issuers/:name/jwks), and keys it removes retire as they do there; an invalid set is
// refused and the stored one stays.
// `gatepass jwks credential ...`: issuer-scoped push credentials (cli/jwks/credential-commands.ts).

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { isAcceptableIssuerUrl } from "../../src/config";
import { isGatepassError } from "../../src/errors";
import { JWKS_FETCH_TIMEOUT_MS, MAX_JWKS_BYTES } from "../../src/limits";
import { loadSnapshot } from "../../src/policy/load-snapshot";
import { formatFinding } from "../../src/policy/policy-source";
import type { IssuerConfig } from "../../src/types";
import {
  jwksStorageKey,
  parseStoredKeySet,
  pushedKeySet,
  pushGraceSeconds,
  retireKeys,
} from "../../src/issuer-keys/stored-key-set";
import { validatePublicJwks } from "../../src/issuer-keys/key-set-validation";
import { readCapped } from "../../src/http/capped-body";
import * as credentials from "../jwks/credential-commands";
import { checkPolicyDir } from "../policy/policy-files";
import { PolicyStorage } from "../policy/policy-storage";
import { USAGE } from "../help";
import { StorageTarget } from "../remote-d1";
import { STORAGE_OPTIONS, storageTarget, wrangler } from "../wrangler";
import { whoAmI } from "./policies";

export const usage = USAGE.jwks;

const err = (text: string) => process.stderr.write(`${text}\n`);

export async function run(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === "credential") return credentials.run(rest);
  if (command !== "push") {
    err(`usage:\n${usage}`);
    return 2;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        issuer: { type: "string" },
        file: { type: "string" },
        url: { type: "string" },
        "drop-previous": { type: "boolean" },
        by: { type: "string" },
        dir: { type: "string", default: "policies" },
        ...STORAGE_OPTIONS,
      },
    }));
  } catch (error) {
    err(`gatepass jwks: ${(error as Error).message}\nusage:\n${usage}`);
    return 2;
  }
  if (!values.issuer || Boolean(values.file) === Boolean(values.url)) {
    err(`gatepass jwks: give --issuer and exactly one of --file and --url\nusage:\n${usage}`);
    return 2;
  }
  // KV only (the live policy and the key records): no D1 config copy is ever made, so none to close.
  const target = new StorageTarget(storageTarget(values));

  // The issuer must be configured, with pushed keys: its URL goes into the stored record.
  const checked = await checkPolicyDir(values.dir!);
  if (!checked.ok) {
    for (const finding of checked.findings) err(formatFinding(finding));
    err(`gatepass jwks: the policies in '${values.dir}' do not validate; fix them first (gatepass policies validate)`);
    return 1;
  }
  const issuer = checked.policy.issuers.find((candidate) => candidate.name === values.issuer);
  if (!issuer || issuer.keys.source !== "pushed") {
    err(
      issuer
        ? `gatepass jwks: issuer '${issuer.name}' gets its keys by ${issuer.keys.source}; only issuers with keys: { ` +
            `source: pushed } take pushed keys`
        : `gatepass jwks: no issuer '${values.issuer}' in '${values.dir}'`,
    );
    return 1;
  }

  const mismatch = await liveIssuerMismatch(target, issuer);
  if (mismatch) {
    err(`gatepass jwks: ${mismatch} Nothing was stored.`);
    return 1;
  }

  let keys;
  try {
    const text = values.file ? await readKeyFile(values.file) : await fetchKeys(values.url!);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error("the key set is not JSON");
    }
    ({ keys } = validatePublicJwks(parsed));
  } catch (error) {
    err(`gatepass jwks: ${isGatepassError(error) ? error.description : (error as Error).message} Nothing was stored.`);
    return 1;
  }

  const now = Math.floor(Date.now() / 1000);
  // Keys the stored set has and this one lacks keep verifying a while, as after the admin endpoint's push.
  const previous = values["drop-previous"] ? undefined : await storedKeySet(target, issuer);
  const retired = retireKeys(previous, keys, now, values["drop-previous"] ? 0 : pushGraceSeconds(issuer));
  const record = pushedKeySet(issuer.url, keys, now, {
    pushedBy: `wrangler:${(values.by ?? whoAmI()).slice(0, 200)}`,
    retired,
  });
  const dir = await mkdtemp(path.join(tmpdir(), "gatepass-jwks-"));
  try {
    const file = path.join(dir, "record.json");
    await writeFile(file, JSON.stringify(record));
    const ttl = record.fresh_until - record.fetched_at;
    await wrangler([
      "kv",
      "key",
      "put",
      jwksStorageKey(issuer.name),
      "--binding",
      "JWKS",
      "--path",
      file,
      "--ttl",
      String(ttl),
      ...target.kvFlags(),
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(
    `stored ${keys.length} key(s) for issuer ${issuer.name}: ${keys.map((k) => k.kid).join(", ")}\n`,
  );
  for (const { key, until } of retired)
    process.stdout.write(`retired ${key.kid}: verifies until ${new Date(until * 1000).toISOString()}\n`);
  return 0;
}

/** The issuer's stored record, if any (wrangler answers a missing key with text that is not JSON). */
async function storedKeySet(target: StorageTarget, issuer: IssuerConfig) {
  const text = await wrangler([
    "kv",
    "key",
    "get",
    jwksStorageKey(issuer.name),
    "--binding",
    "JWKS",
    "--text",
    ...target.kvFlags(),
  ]);
  return parseStoredKeySet(text.replace(/\n$/, ""), issuer);
}

/**
 * The Worker keeps a pushed record only if its issuer URL matches the live policy's, and drops the
 * issuer's keys otherwise: a record built from a local policy that was edited but not pushed would
 * revoke them everywhere. Undefined when the live policy agrees (or none is live yet: the first
 * keys may be pushed before the first policy).
 */
async function liveIssuerMismatch(target: StorageTarget, local: IssuerConfig): Promise<string | undefined> {
  const text = await new PolicyStorage(target).readActive();
  if (text === undefined) return undefined;
  let live: IssuerConfig | undefined;
  let version: string;
  try {
    const policy = await loadSnapshot(text);
    version = policy.version;
    live = policy.issuers.find((candidate) => candidate.name === local.name);
  } catch (error) {
    return `the live policy cannot be read (${(error as Error).message}); push the policies first.`;
  }
  const short = version.slice(0, 12);
  if (!live)
    return (
      `the live policy (${short}) has no issuer '${local.name}'; push the policies first (gatepass policies ` + `push).`
    );
  if (live.keys.source !== "pushed")
    return (
      `in the live policy (${short}) issuer '${local.name}' gets its keys by ${live.keys.source}; push the ` +
      `policies first.`
    );
  if (live.url !== local.url) {
    return (
      `the live policy (${short}) has issuer '${local.name}' at ${live.url}, the local one at ` +
      `${local.url}: the Worker would ignore these keys and drop the issuer's; push the policies first.`
    );
  }
  return undefined;
}

async function readKeyFile(file: string): Promise<string> {
  const text = await readFile(file, "utf8").catch(() => {
    throw new Error(`cannot read '${file}'.`);
  });
  if (Buffer.byteLength(text) > MAX_JWKS_BYTES) throw new Error(`'${file}' is larger than ${MAX_JWKS_BYTES} bytes.`);
  return text;
}

/** From the operator's network (e.g. the private GitLab's /oauth/discovery/keys): https, or http on loopback. */
async function fetchKeys(url: string): Promise<string> {
  if (!isAcceptableIssuerUrl(url, true)) {
    throw new Error(`--url must be an https URL (http only on loopback), got '${url}'.`);
  }
  // Redirects are not followed: one could move the fetch off https or to another host, and whatever
  // it returned would become trusted keys. (Stricter than the Worker's own key fetches, which follow
  // up to JWKS_MAX_REDIRECTS redirects within the issuer's origin: see src/issuer-keys/issuer-fetch.ts.)
  const response = await fetch(url, {
    signal: AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS),
    headers: { Accept: "application/json" },
    redirect: "manual",
  }).catch((error: unknown) => {
    throw new Error(`fetching ${url} failed: ${(error as Error).message}.`);
  });
  if (response.status >= 300 && response.status < 400) {
    throw new Error(
      `${url} answered a redirect (HTTP ${response.status}); redirects are not followed for keys: pass the final ` +
        `URL to --url.`,
    );
  }
  if (response.status !== 200) throw new Error(`${url} answered HTTP ${response.status}.`);
  return readCapped(response, MAX_JWKS_BYTES).catch((error: unknown) => {
    throw new Error(`reading ${url} failed: ${(error as Error).message}.`);
  });
}

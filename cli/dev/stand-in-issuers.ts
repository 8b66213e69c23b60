// The local stand-in "GitLab" and "GitHub" issuers of `gatepass dev`: their names and URLs (as
// policies/ configures them) and the one signing key both use, kept under .wrangler/gatepass-dev/.
// Their keys are pushed into local storage, not fetched.

import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { exportJWK, generateKeyPair, calculateJwkThumbprint, type JWK } from "jose";
import { step } from "./progress-line";

export const DEV_DIR = ".wrangler/gatepass-dev";
const ISSUER_KEY_FILE = path.join(DEV_DIR, "local-gitlab.private.jwk.json");
export const ISSUER_JWKS_FILE = path.join(DEV_DIR, "local-gitlab.jwks.json");
/** Must match the `local-gitlab` issuer in policies/issuers.yaml. */
export const LOCAL_ISSUER = { name: "local-gitlab", url: "http://127.0.0.1:8788", audience: "http://127.0.0.1:8787" };
/** Must match the `local-github` issuer in policies/github.yaml (GitHub Enterprise Server's URL form); same key. */
export const LOCAL_GITHUB_ISSUER = { name: "local-github", url: "http://127.0.0.1:8789/_services/token" };

/** The stand-ins' private key, once `gatepass dev` has generated it; undefined before. */
export async function readIssuerKey(): Promise<JWK | undefined> {
  return existsSync(ISSUER_KEY_FILE) ? (JSON.parse(await readFile(ISSUER_KEY_FILE, "utf8")) as JWK) : undefined;
}

/** The stand-ins' public key set, generating their private key on the first start. */
export async function ensureIssuerKey(): Promise<{ keys: JWK[] }> {
  let privateJwk = await readIssuerKey();
  if (!privateJwk) {
    step(`generating the ${LOCAL_ISSUER.name} stand-in issuer key`);
    const { privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
    privateJwk = await exportJWK(privateKey);
    privateJwk.kid = await calculateJwkThumbprint(privateJwk);
    privateJwk.alg = "RS256";
    await writeFile(ISSUER_KEY_FILE, JSON.stringify(privateJwk), { mode: 0o600 });
  }
  const { kty, n, e, kid, alg } = privateJwk;
  return { keys: [{ kty, n, e, kid, alg, use: "sig" }] };
}

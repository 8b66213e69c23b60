// Issuer-scoped push credentials: `gpk_<id>_<secret>`, each allowed to replace the pushed keys of one
// issuer (PUT /v1/admin/issuers/<issuer>/jwks) and nothing else. D1 `push_credentials` holds the id,
// the issuer (its name and the URL it had when the credential was made), the times and the SHA-256 of
// the whole credential, never the credential. The URL binding means a name later reused for another
// issuer does not inherit the old credentials.
//
// Checking one costs little whatever is sent: the shape is checked first (no I/O for anything that
// is not exactly a credential), then one D1 read by primary key, then a constant-time comparison of
// hashes. An unknown id and a wrong secret take the same path and get the same answer, so a caller
// without the secret learns nothing about which ids exist; only a caller holding the secret is told
// that it expired, was revoked or belongs to another issuer.

import type { Env } from "../config";
import { hex, sha256Hex } from "../encoding";
import { GatepassError } from "../errors";
import { log } from "../log";

export const PUSH_CREDENTIAL_PREFIX = "gpk_";
/** 64 random bits: ids never collide in practice (the primary key would refuse one that did); not secret. */
const ID_BYTES = 8;
/** 256 random bits: far beyond guessing, so one fast SHA-256 is a sound hash (no password stretching needed). */
const SECRET_BYTES = 32;
const CREDENTIAL = /^(gpk_[0-9a-f]{16})_[0-9a-f]{64}$/;
/** A push credential's id, as `list` shows it and `revoke` takes it. */
export const PUSH_CREDENTIAL_ID = /^gpk_[0-9a-f]{16}$/;

export interface NewPushCredential {
  id: string;
  /** The credential itself: shown once, never stored. */
  credential: string;
  /** What D1 stores instead. */
  secretSha256: string;
}

export async function newPushCredential(): Promise<NewPushCredential> {
  const random = (bytes: number) => hex(crypto.getRandomValues(new Uint8Array(bytes)).buffer);
  const id = `${PUSH_CREDENTIAL_PREFIX}${random(ID_BYTES)}`;
  const credential = `${id}_${random(SECRET_BYTES)}`;
  return { id, credential, secretSha256: await sha256Hex(credential) };
}

/** The id of a well-formed credential, else undefined. */
export function pushCredentialId(presented: string): string | undefined {
  return CREDENTIAL.exec(presented)?.[1];
}

/** Whether a bearer value is meant as a push credential (its prefix), well-formed or not. */
export function looksLikePushCredential(presented: string): boolean {
  return presented.startsWith(PUSH_CREDENTIAL_PREFIX);
}

interface CredentialRow {
  issuer: string;
  issuer_url: string | null;
  secret_sha256: string;
  expires_at: number;
  revoked_at: number | null;
}

/** The issuer a push is for: its name from the path, and its URL once the live policy has been read. */
export interface PushTarget {
  name: string;
  /** Undefined for the early check (before the body is read and the policy loaded); always given at write time. */
  url?: string;
}

/**
 * The id of the credential when it may push keys for `issuer` now; otherwise throws
 * push_credential_invalid | _revoked | _expired | _wrong_issuer | _issuer_changed. Called twice per
 * push: before the body is read, and again just before the keys are written (with the issuer's URL),
 * so a revocation or expiry during a slow upload stops the push.
 */
export async function authenticatePushCredential(
  env: Env,
  presented: string,
  issuer: PushTarget,
  now: number,
): Promise<string> {
  const issuerName = issuer.name;
  const id = pushCredentialId(presented);
  if (id === undefined) throw new GatepassError("push_credential_invalid");
  let row: CredentialRow | null;
  try {
    row = await env.DB.prepare(
      "SELECT issuer, issuer_url, secret_sha256, expires_at, revoked_at FROM push_credentials WHERE id = ?",
    )
      .bind(id)
      .first<CredentialRow>();
  } catch (cause) {
    throw new GatepassError("internal_error", {
      description: "gatepass could not check the push credential (its D1 database did not answer); retry later.",
      cause,
    });
  }
  if (!(await matchesStoredHash(presented, row?.secret_sha256)) || !row)
    throw new GatepassError("push_credential_invalid");
  if (row.revoked_at !== null) throw new GatepassError("push_credential_revoked");
  if (now >= row.expires_at) throw new GatepassError("push_credential_expired");
  if (row.issuer !== issuerName) {
    throw new GatepassError("push_credential_wrong_issuer", {
      description:
        `This push credential pushes keys for issuer ${row.issuer} only, not ${issuerName}; use the ` +
        `credential created with --issuer ${issuerName}.`,
    });
  }
  if (issuer.url !== undefined && row.issuer_url !== issuer.url) {
    throw new GatepassError("push_credential_issuer_changed", {
      description:
        row.issuer_url === null
          ? `This push credential was made before credentials were bound to their issuer's URL; create a new one ` +
            `(gatepass jwks credential create --issuer ${issuerName}) and revoke this one.`
          : `This push credential was made for issuer ${issuerName} at ${row.issuer_url}; the live policy has ` +
            `${issuerName} at ${issuer.url}. Create a new one (gatepass jwks credential create --issuer ` +
            `${issuerName}) for the issuer as it is now.`,
    });
  }
  return id;
}

/** Notes an accepted use (for `credential list`); off the critical path, a failure is only logged. */
export async function recordPushCredentialUse(env: Env, id: string, now: number): Promise<void> {
  try {
    await env.DB.prepare("UPDATE push_credentials SET last_used_at = ? WHERE id = ?").bind(now, id).run();
  } catch (err) {
    log("warn", "push_credential_use_not_recorded", {
      credential: id,
      reason: err instanceof Error ? err.message : String(err),
    });
  }
}

/**
 * Constant time: the presented credential's SHA-256 is compared with timingSafeEqual, against an
 * all-zero stand-in when there is no (well-formed) stored hash, so every path does the same work.
 */
async function matchesStoredHash(presented: string, storedHex: string | undefined): Promise<boolean> {
  const stored = storedHex !== undefined && /^[0-9a-f]{64}$/.test(storedHex) ? fromHex(storedHex) : undefined;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(presented));
  const equal = crypto.subtle.timingSafeEqual(digest, stored ?? new Uint8Array(32));
  return equal && stored !== undefined;
}

function fromHex(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

// Strict encodings and value checks shared across gatepass: token parsing, key validation, policy
// files, and the SHA-256 digests that stand in for tokens and snapshots.

import { Buffer } from "node:buffer";

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * Unpadded base64url (RFC 7515 §2) to bytes; undefined for padding, other alphabets, an impossible
 * length or a non-canonical spelling. The alphabet is checked first because Buffer's decoder skips
 * characters it does not know; canonical form is required so that one token has exactly one spelling
 * (otherwise flipping unused low bits of the last character yields a "different" valid token, which
 * would split audit correlation by token hash).
 */
export function decodeBase64url(text: string): Uint8Array | undefined {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
  return hasCanonicalTail(text) ? Buffer.from(text, "base64url") : undefined;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Only the last character can carry unused bits (4 of them when length % 4 is 2, 2 when it is 3); they must be zero.
 */
function hasCanonicalTail(text: string): boolean {
  const rest = text.length % 4;
  if (rest === 0) return true;
  return (ALPHABET.indexOf(text[text.length - 1]!) & (rest === 2 ? 0x0f : 0x03)) === 0;
}

/** base64url → UTF-8 (invalid sequences refused) → JSON; undefined when any step fails. */
export function decodeBase64urlJson(text: string): unknown {
  const bytes = decodeBase64url(text);
  if (!bytes) return undefined;
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch {
    return undefined;
  }
}

export function hex(bytes: ArrayBuffer): string {
  return Buffer.from(bytes).toString("hex");
}

/** Lower-case hex SHA-256 of a string's UTF-8 or of bytes. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", typeof data === "string" ? new TextEncoder().encode(data) : data));
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

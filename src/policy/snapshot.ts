// The stored form of a policy: canonical JSON (sorted keys, no whitespace, ASCII only) whose body hash
// is the version. The same sources always give the same version; the push time and the source digest
// are carried alongside but are not part of the hash, so re-pushing unchanged policy is a no-op.

import { sha256Hex } from "../encoding";
import type { PolicySnapshot } from "../types";
import type { PolicyParts } from "./schema";

export const SNAPSHOT_FORMAT = 1;

/** JSON with object keys sorted at every level; non-ASCII escaped so the text is plain ASCII. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value)).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const inner = (value as Record<string, unknown>)[key];
    if (inner !== undefined) out[key] = sortKeys(inner);
  }
  return out;
}

export type SnapshotBody = Pick<PolicySnapshot, "format" | "issuers" | "targets" | "rules">;

/** The hashed part: issuers and targets sorted by name (file layout does not matter), rules in source order (it decides which rule a grant names). */
export function snapshotBody(parts: PolicyParts): SnapshotBody {
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return { format: SNAPSHOT_FORMAT, issuers: [...parts.issuers].sort(byName), targets: [...parts.targets].sort(byName), rules: parts.rules };
}

export async function snapshotVersion(body: SnapshotBody): Promise<string> {
  return sha256Hex(canonicalJson(body));
}

export async function buildSnapshot(
  parts: PolicyParts,
  meta: { sourceDigest: string; createdAt: string },
): Promise<{ snapshot: PolicySnapshot; text: string }> {
  const body = snapshotBody(parts);
  const snapshot: PolicySnapshot = { ...body, version: await snapshotVersion(body), source_digest: meta.sourceDigest, created_at: meta.createdAt };
  return { snapshot, text: canonicalJson(snapshot) };
}

/** Digest of the source files as read: names and bytes, in name order. */
export async function sourceDigest(files: readonly { name: string; bytes: Uint8Array }[]): Promise<string> {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const lines: string[] = [];
  for (const file of sorted) lines.push(`${await sha256Hex(file.bytes)}  ${JSON.stringify(file.name)}`);
  return sha256Hex(lines.join("\n"));
}

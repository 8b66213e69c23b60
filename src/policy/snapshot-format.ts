// The stored form of a policy: canonical JSON (sorted keys, no whitespace, ASCII only) whose body hash
// is the version. The same sources always give the same version; the push time and the source digest
// are carried alongside but are not part of the hash, so re-pushing unchanged policy is a no-op.

import { sha256Hex } from "../encoding";
import { POLICY_KV_CHUNK_BYTES } from "../limits";
import type { PolicySnapshot } from "../types";
import { chooseFilings, RuleIndex, type IndexData } from "./rule-index";
import type { PolicyParts } from "./policy-schema";

export const SNAPSHOT_FORMAT = 1;

/** JSON with object keys sorted at every level; non-ASCII escaped so the text is plain ASCII. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value)).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
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

/**
 * The hashed part: issuers and targets sorted by name (file layout does not matter), rules in source order (it decides
 * which rule a grant names).
 */
export function snapshotBody(parts: PolicyParts): SnapshotBody {
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return {
    format: SNAPSHOT_FORMAT,
    issuers: [...parts.issuers].sort(byName),
    targets: [...parts.targets].sort(byName),
    rules: parts.rules,
  };
}

export async function snapshotVersion(body: SnapshotBody): Promise<string> {
  return sha256Hex(canonicalJson(body));
}

export async function buildSnapshot(
  parts: PolicyParts,
  meta: { sourceDigest: string; createdAt: string },
): Promise<{ snapshot: PolicySnapshot; text: string }> {
  const body = snapshotBody(parts);
  const snapshot: PolicySnapshot = {
    ...body,
    version: await snapshotVersion(body),
    source_digest: meta.sourceDigest,
    created_at: meta.createdAt,
  };
  return { snapshot, text: canonicalJson(snapshot) };
}

/** Digest of the source files as read: names and bytes, in name order. */
export async function sourceDigest(files: readonly { name: string; bytes: Uint8Array }[]): Promise<string> {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const lines: string[] = [];
  for (const file of sorted) lines.push(`${await sha256Hex(file.bytes)}  ${JSON.stringify(file.name)}`);
  return sha256Hex(lines.join("\n"));
}

// ---- the stored form (format 2) ---------------------------------------------------------------
// What push writes and the Worker reads: a header line, then the payload: the index, then the body.
// The body is the canonical body above, byte for byte, so its hash is still the version; the index
// (src/policy/rule-index.ts) says where each rule's text starts in the body and which rules are filed under
// which claim values, in the shape lookups use (JSON.parse builds its tables). A cold isolate hashes
// both and parses only the index, the issuers and the targets; each rule is parsed and checked when a
// token first needs it (load-snapshot.ts).

export const STORED_FORMAT = 2;

/** The header line, also the value of KV `active`: what the payload holds and how to check it. */
export interface StoredHeader {
  format: typeof STORED_FORMAT;
  /** The policy's version: SHA-256 of the body. */
  version: string;
  source_digest: string;
  created_at: string;
  index_length: number;
  index_sha256: string;
  body_length: number;
  /** KV values the payload is split into (POLICY_KV_CHUNK_BYTES each, the last one shorter). */
  chunks: number;
}

/** The index: where each rule's text starts in the body, and the rule numbers by issuer and filing (rule-index.ts). */
export interface StoredIndex {
  by_issuer: IndexData;
  starts: number[];
  issuers_length: number;
  targets_length: number;
}

/** A type's keys, sorted: the exact keys load-snapshot.ts accepts. Written as a Record so the compiler
 *  holds each list to the type it reads (a field added to the type and not here does not compile). */
function sortedKeys<T>(keys: Record<keyof T, true>): readonly string[] {
  return Object.keys(keys).sort();
}

export const SNAPSHOT_KEYS = sortedKeys<PolicySnapshot>({
  format: true,
  version: true,
  source_digest: true,
  created_at: true,
  issuers: true,
  targets: true,
  rules: true,
});
export const STORED_HEADER_KEYS = sortedKeys<StoredHeader>({
  format: true,
  version: true,
  source_digest: true,
  created_at: true,
  index_length: true,
  index_sha256: true,
  body_length: true,
  chunks: true,
});
export const STORED_INDEX_KEYS = sortedKeys<StoredIndex>({
  by_issuer: true,
  starts: true,
  issuers_length: true,
  targets_length: true,
});

/** Every stored header starts so (canonical JSON sorts its keys); a format 1 snapshot never does. */
export const STORED_HEADER_START = '{"body_length":';

/** The body is `{"format":1,"issuers":I,"rules":[R,R,...],"targets":T}`; these are its fixed parts. */
export const BODY_PARTS = {
  head: `{"format":${SNAPSHOT_FORMAT},"issuers":`,
  rules: ',"rules":[',
  targets: '],"targets":',
  tail: "}",
} as const;

export interface StoredSnapshot {
  header: StoredHeader;
  /** canonicalJson(header): the value of KV `active`. */
  headerText: string;
  /** Index then body: what the KV chunks hold. */
  payload: string;
  /** headerText, a newline, payload: what loadSnapshot reads. */
  text: string;
}

/** The stored form of a snapshot. Deterministic: the same snapshot always gives the same text. */
export async function storedSnapshot(snapshot: PolicySnapshot): Promise<StoredSnapshot> {
  const body = snapshotBody(snapshot);
  const bodyText = canonicalJson(body);
  const version = await sha256Hex(bodyText);
  if (version !== snapshot.version) throw new Error(`snapshot ${snapshot.version} does not hash to its version`);
  const issuersText = canonicalJson(body.issuers);
  const targetsText = canonicalJson(body.targets);
  const ruleTexts = body.rules.map((rule) => canonicalJson(rule));
  // The layout loadSnapshot relies on, checked here where a change to canonicalJson would show first.
  if (
    bodyText !==
    `${BODY_PARTS.head}${issuersText}${BODY_PARTS.rules}${ruleTexts.join(",")}${BODY_PARTS.targets}${targetsText}${BODY_PARTS.tail}`
  ) {
    throw new Error("the canonical body does not have the stored layout");
  }
  const starts: number[] = [];
  let at = BODY_PARTS.head.length + issuersText.length + BODY_PARTS.rules.length;
  for (const rule of ruleTexts) {
    starts.push(at);
    at += rule.length + 1;
  }
  const index: StoredIndex = {
    by_issuer: RuleIndex.build(body.rules, chooseFilings(body.rules)).data,
    starts,
    issuers_length: issuersText.length,
    targets_length: targetsText.length,
  };
  const indexText = canonicalJson(index);
  const payload = indexText + bodyText;
  const header: StoredHeader = {
    format: STORED_FORMAT,
    version,
    source_digest: snapshot.source_digest,
    created_at: snapshot.created_at,
    index_length: indexText.length,
    index_sha256: await sha256Hex(indexText),
    body_length: bodyText.length,
    chunks: Math.max(1, Math.ceil(payload.length / POLICY_KV_CHUNK_BYTES)),
  };
  const headerText = canonicalJson(header);
  return { header, headerText, payload, text: `${headerText}\n${payload}` };
}

/** The payload cut into the KV values the header counts. */
export function payloadChunks(payload: string): string[] {
  const out: string[] = [];
  for (let at = 0; at < payload.length; at += POLICY_KV_CHUNK_BYTES)
    out.push(payload.slice(at, at + POLICY_KV_CHUNK_BYTES));
  return out.length > 0 ? out : [""];
}

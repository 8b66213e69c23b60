// loadSnapshot is the Worker's gate for what it reads from KV, in either stored form:
// - format 2 (what push writes, snapshot-format.ts): the index and the body must hash to the header's
//   `index_sha256` and `version`; the index is parsed and checked in shape, the issuers and targets
//   are validated at once; each rule is cut from the body, parsed, validated and checked to be
//   canonical when a token first needs it (compile-policy.ts). A cold isolate so does no work per
//   rule: it hashes the snapshot and parses its index.
// - format 1 (a whole snapshot as JSON, what push wrote before): parsed and validated at once.
// Anything corrupt is refused (the store then keeps its last good snapshot, or fails closed). Every
// rule the index finds is evaluated in full, so an index can only cost lookups or miss a rule, never
// allow what the rules do not. Push and rollback run verifySnapshot, which decodes every rule and
// rebuilds the index, so only a snapshot written to KV by other means can hold a rule the Worker refuses.

import { isPlainObject, sha256Hex } from "../encoding";
import { GatepassError } from "../errors";
import { MAX_POLICY_KV_CHUNKS, MAX_POLICY_SNAPSHOT_BYTES, MAX_RULES } from "../limits";
import type { PolicySnapshot, RuleSpec } from "../types";
import { compilePolicy, CompiledPolicy } from "./compile-policy";
import { RuleIndex } from "./rule-index";
import { normalizePolicy, type Path, type Problem } from "./policy-schema";
import {
  BODY_PARTS,
  canonicalJson,
  SNAPSHOT_FORMAT,
  SNAPSHOT_KEYS,
  snapshotBody,
  snapshotVersion,
  STORED_FORMAT,
  STORED_HEADER_KEYS,
  STORED_HEADER_START,
  STORED_INDEX_KEYS,
  storedSnapshot,
  type StoredHeader,
} from "./snapshot-format";

const HEX64 = /^[0-9a-f]{64}$/;

/** Parses and checks a snapshot read from KV. Throws GatepassError("policy_invalid") on anything corrupt. */
export async function loadSnapshot(text: string): Promise<CompiledPolicy> {
  if (!text.startsWith(STORED_HEADER_START)) return loadWholeSnapshot(text);
  const newline = text.indexOf("\n");
  if (newline < 0) throw invalid("it has no payload after its header");
  return loadStoredSnapshot(
    readStoredHeader(text.slice(0, newline)),
    new TextEncoder().encode(text.slice(newline + 1)),
  );
}

/**
 * What push and rollback run before writing: everything loadSnapshot checks, for every rule, the checks
 * that span rules (unique names), and, for the stored form, that the index is the one this code builds.
 * The Worker then never meets a rule it refuses.
 */
export async function verifySnapshot(text: string): Promise<CompiledPolicy> {
  const policy = await loadSnapshot(text);
  let rules: RuleSpec[];
  try {
    rules = policy.allRules().map((rule) => rule.spec);
  } catch {
    throw invalid(policy.refusal ?? "a rule was refused");
  }
  if (text.startsWith(STORED_HEADER_START)) {
    const { issuers, targets } = policy.snapshot;
    const { problems } = normalizePolicy([{ name: "snapshot", value: { issuers, targets, rules } }], "snapshot");
    if (problems.length > 0) throw invalid(describeProblems(problems));
    const { version, source_digest, created_at } = policy.snapshot;
    const rebuilt = await storedSnapshot({
      format: SNAPSHOT_FORMAT,
      version,
      source_digest,
      created_at,
      issuers,
      targets,
      rules,
    });
    if (rebuilt.text !== text) throw invalid("its index is not the one its rules give");
  }
  return policy;
}

// ---- format 1: the whole snapshot as one JSON object -------------------------------------------

async function loadWholeSnapshot(text: string): Promise<CompiledPolicy> {
  if (text.length > MAX_POLICY_SNAPSHOT_BYTES) throw invalid(`it is larger than ${MAX_POLICY_SNAPSHOT_BYTES} bytes`);
  const fields = parseObject(text, "it");
  const keys = Object.keys(fields).sort();
  if (keys.join() !== SNAPSHOT_KEYS.join())
    throw invalid(`its keys are ${keys.join(", ")}; expected ${SNAPSHOT_KEYS.join(", ")}`);
  if (fields.format !== SNAPSHOT_FORMAT) throw invalid(`format ${JSON.stringify(fields.format)} is not supported`);
  const meta = checkMeta(fields);

  const given = { issuers: fields.issuers, targets: fields.targets, rules: fields.rules };
  const { policy, problems } = normalizePolicy([{ name: "snapshot", value: given }], "snapshot");
  if (problems.length > 0) throw invalid(describeProblems(problems));
  // A valid snapshot is a fixed point of normalisation: nothing defaulted, reordered or re-spelled.
  const body = snapshotBody(policy);
  if (canonicalJson(body) !== canonicalJson({ format: SNAPSHOT_FORMAT, ...given }))
    throw invalid("it is not in canonical form");
  if ((await snapshotVersion(body)) !== meta.version) throw invalid("its content hash does not match its version");
  return compilePolicy({ ...body, ...meta });
}

// ---- format 2: header, index, body --------------------------------------------------------------

/** Checks a stored header (the value of KV `active`, or a stored text's first line). Throws policy_invalid. */
export function readStoredHeader(text: string): StoredHeader {
  if (text.length > 1024) throw invalid("its header is too long");
  const fields = parseObject(text, "its header");
  const keys = Object.keys(fields).sort();
  if (keys.join() !== STORED_HEADER_KEYS.join())
    throw invalid(`its header's keys are ${keys.join(", ")}; expected ${STORED_HEADER_KEYS.join(", ")}`);
  if (fields.format !== STORED_FORMAT) throw invalid(`format ${JSON.stringify(fields.format)} is not supported`);
  const meta = checkMeta(fields);
  const { index_length, body_length, chunks, index_sha256 } = fields;
  const count = (value: unknown, max: number) =>
    Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= max;
  if (!count(index_length, MAX_POLICY_SNAPSHOT_BYTES) || !count(body_length, MAX_POLICY_SNAPSHOT_BYTES))
    throw invalid("its lengths are not byte counts");
  if ((index_length as number) + (body_length as number) > MAX_POLICY_SNAPSHOT_BYTES)
    throw invalid(`it is larger than ${MAX_POLICY_SNAPSHOT_BYTES} bytes`);
  if (!count(chunks, MAX_POLICY_KV_CHUNKS))
    throw invalid(`its chunk count is not a number from 1 to ${MAX_POLICY_KV_CHUNKS}`);
  if (typeof index_sha256 !== "string" || !HEX64.test(index_sha256))
    throw invalid("index_sha256 is not a SHA-256 hex digest");
  const header: StoredHeader = {
    format: STORED_FORMAT,
    ...meta,
    index_length: index_length as number,
    index_sha256,
    body_length: body_length as number,
    chunks: chunks as number,
  };
  if (canonicalJson(header) !== text) throw invalid("its header is not in canonical form");
  return header;
}

/**
 * Loads a stored snapshot from its header and payload (index then body, as bytes: the Worker reads KV
 * values as bytes, hashes them as they are and decodes only what it parses). Throws policy_invalid.
 */
export async function loadStoredSnapshot(header: StoredHeader, payload: Uint8Array): Promise<CompiledPolicy> {
  if (payload.length !== header.index_length + header.body_length)
    throw invalid(
      `its payload is ${payload.length} bytes; the header says ${header.index_length + header.body_length}`,
    );
  const indexBytes = payload.subarray(0, header.index_length);
  const body = payload.subarray(header.index_length);
  const [indexHash, bodyHash] = await Promise.all([sha256Hex(indexBytes), sha256Hex(body)]);
  if (indexHash !== header.index_sha256) throw invalid("its index does not hash to index_sha256");
  if (bodyHash !== header.version) throw invalid("its content hash does not match its version");
  const text = (from: number, to: number) => ascii.decode(body.subarray(from, to));

  const stored = readIndex(ascii.decode(indexBytes));
  // The body's fixed layout: head, issuers, rules (each starting where the index says), targets, tail.
  const issuersAt = BODY_PARTS.head.length;
  const rulesAt = issuersAt + stored.issuers_length + BODY_PARTS.rules.length;
  const targetsAt = body.length - BODY_PARTS.tail.length - stored.targets_length;
  const rulesEnd = targetsAt - BODY_PARTS.targets.length;
  const fixed = (at: number, part: string) => at >= 0 && text(at, at + part.length) === part;
  if (
    !fixed(0, BODY_PARTS.head) ||
    !fixed(rulesAt - BODY_PARTS.rules.length, BODY_PARTS.rules) ||
    rulesEnd < rulesAt ||
    !fixed(rulesEnd, BODY_PARTS.targets) ||
    !fixed(body.length - BODY_PARTS.tail.length, BODY_PARTS.tail) ||
    (stored.starts.length === 0) !== (rulesEnd === rulesAt) ||
    (stored.starts.length > 0 && stored.starts[0] !== rulesAt)
  ) {
    throw invalid("its body does not have the stored layout");
  }
  const issuersText = text(issuersAt, issuersAt + stored.issuers_length);
  const targetsText = text(targetsAt, targetsAt + stored.targets_length);
  const rawIssuers = parseJson(issuersText, "its issuers");
  const rawTargets = parseJson(targetsText, "its targets");
  const { policy, problems } = normalizePolicy(
    [{ name: "snapshot", value: { issuers: rawIssuers, targets: rawTargets } }],
    "snapshot",
  );
  if (problems.length > 0) throw invalid(describeProblems(problems));
  const checked = snapshotBody({ ...policy, rules: [] });
  if (canonicalJson(checked.issuers) !== issuersText || canonicalJson(checked.targets) !== targetsText) {
    throw invalid("its issuers or targets are not in canonical form");
  }
  const index = RuleIndex.read(stored.by_issuer, new Set(checked.issuers.map((issuer) => issuer.name)));
  if (!index) throw invalid("its index is malformed");

  const rawIssuerByName = new Map((rawIssuers as Record<string, unknown>[]).map((issuer) => [issuer.name, issuer]));
  const rawTargetByName = new Map((rawTargets as Record<string, unknown>[]).map((target) => [target.name, target]));
  const { starts } = stored;
  const comma = ",".charCodeAt(0);
  const spec = (order: number): RuleSpec => {
    // Rule `order` runs from its start to the comma before the next one (or to the end of the rules).
    const start = starts[order];
    const end = order + 1 < starts.length ? (starts[order + 1] as number) - 1 : rulesEnd;
    if (
      !Number.isSafeInteger(start) ||
      !Number.isSafeInteger(end) ||
      (start as number) < rulesAt ||
      end <= (start as number) ||
      end > rulesEnd ||
      (order > 0 && body[(start as number) - 1] !== comma) ||
      (order + 1 < starts.length && body[end] !== comma)
    ) {
      throw new Error("the index does not place it in the body");
    }
    const ruleText = text(start as number, end);
    const raw = parseJson(ruleText, "it");
    // Validated with its own issuer and the targets it names, so the same checks as a whole policy apply.
    const fields = isPlainObject(raw) ? raw : {};
    const allow = Array.isArray(fields.allow) ? fields.allow : [];
    const targets = [...new Set(allow)].flatMap((name) =>
      rawTargetByName.has(name) ? [rawTargetByName.get(name)] : [],
    );
    const issuers = rawIssuerByName.has(fields.issuer) ? [rawIssuerByName.get(fields.issuer)] : [];
    const { policy: one, problems: ruleProblems } = normalizePolicy(
      [{ name: "snapshot", value: { issuers, targets, rules: [raw] } }],
      "snapshot",
    );
    if (ruleProblems.length > 0) throw new Error(describeProblems(ruleProblems));
    const rule = one.rules[0]!;
    if (canonicalJson(rule) !== ruleText) throw new Error("it is not in canonical form");
    return rule;
  };
  return new CompiledPolicy(header, checked.issuers, checked.targets, index, { count: starts.length, spec });
}

/** Stored snapshots are ASCII (canonical JSON escapes the rest); anything else fails the checks after decoding. */
const ascii = new TextDecoder();

function readIndex(text: string): {
  by_issuer: unknown;
  starts: unknown[];
  issuers_length: number;
  targets_length: number;
} {
  const fields = parseObject(text, "its index");
  if (Object.keys(fields).sort().join() !== STORED_INDEX_KEYS.join()) throw invalid("its index has the wrong keys");
  const { by_issuer, starts, issuers_length, targets_length } = fields;
  if (!Array.isArray(starts) || starts.length > MAX_RULES)
    throw invalid(`its index does not place at most ${MAX_RULES} rules`);
  const natural = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
  if (!natural(issuers_length) || !natural(targets_length)) throw invalid("its index's lengths are not byte counts");
  return { by_issuer, starts, issuers_length: issuers_length as number, targets_length: targets_length as number };
}

// ---- shared ------------------------------------------------------------------------------------

function checkMeta(fields: Record<string, unknown>): Pick<PolicySnapshot, "version" | "source_digest" | "created_at"> {
  const { version, source_digest, created_at } = fields;
  if (typeof version !== "string" || !HEX64.test(version)) throw invalid("version is not a SHA-256 hex digest");
  if (typeof source_digest !== "string" || !HEX64.test(source_digest))
    throw invalid("source_digest is not a SHA-256 hex digest");
  if (typeof created_at !== "string" || created_at.length > 40 || !Number.isFinite(Date.parse(created_at)))
    throw invalid("created_at is not a timestamp");
  return { version, source_digest, created_at };
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalid(`${what === "it" ? "it is" : `${what} are`} not JSON`);
  }
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(`${what} is not JSON`);
  }
  if (!isPlainObject(value)) throw invalid(`${what} is not a JSON object`);
  return value;
}

function describeProblems(problems: readonly Problem[]): string {
  const shown = problems.slice(0, 3).map((p) => `${formatPath(p.path)}: ${p.message}`);
  return `${shown.join("; ")}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ""}`;
}

function invalid(reason: string): GatepassError {
  return new GatepassError("policy_invalid", { description: `The policy snapshot was refused: ${reason}.` });
}

/** `["rules", 3, "match", "ref"]` → `rules[3].match.ref`. */
function formatPath(path: Path): string {
  return (
    path.map((part, i) => (typeof part === "number" ? `[${part}]` : i === 0 ? part : `.${part}`)).join("") ||
    "(top level)"
  );
}

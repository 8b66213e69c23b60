// `gatepass policies explain`: why a job gets or is denied each target, offline, from the local
// policies: its grants, its ids next to their paths, and per target every rule that allows it with
// its scope and the conditions the job fails (admins have the sources, so the rule's side is shown).

import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { isPlainObject } from "../../src/encoding";
import type { CompiledPolicy } from "../../src/policy/compile-policy";
import { claimValue, explainTarget, grantsFor } from "../../src/policy/evaluate";
import { formatFinding } from "../../src/policy/policy-source";
import type { VerifiedIdentity } from "../../src/types";
import {
  idClaims,
  scopeClaims,
  vocabularyOf,
  type ClaimVocabulary,
} from "../../src/verify/issuer-kinds/claim-vocabulary";
import { UsageError } from "../usage-error";
import { checkPolicyDir } from "./policy-files";
import { decodeTokenPayload, offlineIdentity, resolveIssuer } from "./offline-identity";

const COMMON = { dir: { type: "string", default: "policies" } } as const;

/** Exit 0 when every target explained is allowed, 1 when one is denied (or the policies are invalid), 2 on usage. */
export async function explain(
  args: string[],
  io: { out: (text: string) => void; err: (text: string) => void },
): Promise<number> {
  const { out } = io;
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON,
      claims: { type: "string" },
      token: { type: "string" },
      issuer: { type: "string" },
      target: { type: "string", multiple: true },
    },
  });
  if ((values.claims === undefined) === (values.token === undefined)) {
    throw new UsageError(
      "give exactly one of --claims FILE (JSON claims) or --token FILE (a JWT; its signature is not checked)",
    );
  }
  const result = await checkPolicyDir(values.dir);
  for (const finding of result.findings) io.err(formatFinding(finding));
  if (!result.ok) return 1;
  const identity = await readIdentity(result.policy, values);
  const targets = values.target ?? [...result.policy.targets.keys()].sort();
  const unknown = targets.filter((target) => !result.policy.targets.has(target));
  if (unknown.length > 0)
    throw new UsageError(
      `unknown target ${unknown.map((t) => `'${t}'`).join(", ")}; configured: ` +
        `${[...result.policy.targets.keys()].join(", ")}`,
    );
  return explainTargets(result.policy, identity, targets, out) ? 0 : 1;
}

/** The identity of --claims or --token: a file that cannot be read as one is a usage error (exit 2), not a denial. */
async function readIdentity(
  policy: CompiledPolicy,
  values: { claims?: string; token?: string; issuer?: string },
): Promise<VerifiedIdentity> {
  try {
    const text = await readFile((values.claims ?? values.token)!, "utf8");
    const raw = values.claims !== undefined ? parseClaims(text) : decodeTokenPayload(text);
    return offlineIdentity(resolveIssuer(policy.issuers, values.issuer, raw.iss), raw);
  } catch (e) {
    throw new UsageError(`${values.claims !== undefined ? "--claims" : "--token"}: ${(e as Error).message}`);
  }
}

function parseClaims(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("the claims file is not JSON");
  }
  if (!isPlainObject(value)) throw new Error("the claims file must hold a JSON object");
  return value;
}

/** The issuer's [id, path] pairs (project, then owner): GitLab's, GitHub's or its profile's (claim-vocabulary.ts). */
function idScopes(vocabulary: ClaimVocabulary): [string | undefined, string | undefined][] {
  return [
    [vocabulary.projectId, vocabulary.projectPath],
    [vocabulary.ownerId, vocabulary.ownerPath],
  ];
}

/**
 * Prints the grants and, per target, the rules that allow it with their scope and failed conditions. Returns whether
 * every target is allowed.
 */
function explainTargets(
  policy: CompiledPolicy,
  identity: VerifiedIdentity,
  targets: readonly string[],
  out: (text: string) => void,
): boolean {
  const show = (value: unknown) => (value === null || value === undefined ? "(missing)" : JSON.stringify(value));
  const rules = new Map(policy.snapshot.rules.map((r) => [r.name, r]));
  out(
    `issuer ${identity.issuer}; grants: ${
      grantsFor(policy, identity)
        .map((g) => `${g.target} (rule ${g.rule})`)
        .join(", ") || "none"
    }`,
  );
  // Ids next to paths: a rule should name the id (paths are reused after a rename; lint privileged-path-scope).
  const vocabulary = vocabularyOf(policy.issuers.find((issuer) => issuer.name === identity.issuer));
  const shown = (claim: string) => `${claim} ${show(claimValue(identity.claims, claim))}`;
  const pairs = idScopes(vocabulary).filter(([id, path]) => id !== undefined || path !== undefined);
  out(
    `job: ${pairs.map(([id, path]) => (id && path ? `${shown(id)} (${shown(path)})` : shown((id ?? path)!))).join(", ")}`,
  );
  let allAllowed = true;
  for (const target of targets) {
    const explanation = explainTarget(policy, identity, target);
    allAllowed &&= explanation.allowed;
    out(`\n${target}: ${explanation.allowed ? `ALLOW by rule ${explanation.rule}` : "DENY"}`);
    if (explanation.rules.length === 0) out(`  no rule of issuer ${identity.issuer} allows ${target}`);
    for (const rule of explanation.rules) {
      const match = rules.get(rule.rule)?.match ?? {};
      out(`  rule ${rule.rule} (${ruleScope(match, vocabulary)}): ${rule.matched ? "matches" : "does not match"}`);
      for (const failure of rule.failures) {
        // Admins have the sources anyway, so the CLI shows what the rule wants next to what the token has.
        out(
          `    ${failure.claim}: token has ${show(failure.actual)}, rule wants ${JSON.stringify(match[failure.claim])}`,
        );
      }
    }
    if (explanation.omitted) out(`  (${explanation.omitted} more rules allow ${target})`);
  }
  return allAllowed;
}

/** A rule's project and namespace conditions as written, saying when no id is among them. */
function ruleScope(match: Record<string, unknown>, vocabulary: ClaimVocabulary): string {
  const scope = scopeClaims(vocabulary)
    .filter((claim) => Object.hasOwn(match, claim))
    .map((claim) => `${claim} ${JSON.stringify(match[claim])}`);
  if (scope.length === 0) return "no project or namespace scope";
  const byId = idClaims(vocabulary).some((id) => Object.hasOwn(match, id));
  return `scope ${scope.join(", ")}${byId ? "" : ", by path only"}`;
}

// Every command group's usage text, apart from the groups' code: `gatepass --help` and an unknown or
// misspelled command load this module only, not the commands (which bring yaml, jose and wrangler).
// Each group's module re-exports its own text as `usage`.
import { formatUsage } from "./usage-error";

const STORAGE_SYNOPSIS = "[--local|--remote] [--env NAME] [--persist-to DIR] [--config FILE]";

const audit = formatUsage([
  {
    synopsis: [
      "audit query [--project P] [--target T] [--issuer I] [--claimed-issuer I] [--decision allow|deny|error]",
      "[--since ISO] [--limit N]",
      "[--local|--remote] [--env NAME] [--persist-to DIR] [--config FILE]",
    ],
    help: [
      "the newest events (--limit), oldest first, as JSON lines; --claimed-issuer",
      "matches the unverified issuer of refused tokens (e.g. key_unknown)",
    ],
  },
  {
    synopsis: ["audit tail [same filters]"],
    help: ["the newest events (--limit), then every new one,", "oldest first (Ctrl-C to stop)"],
  },
]);

const deploy = `  deploy [--env NAME] [--config FILE] [--secrets-dir DIR | --signing-keys-file F --admin-token-file F]
         [--dir DIR] [--by WHO] [--dry-run]
                                    check config and policies, set the secrets the Worker lacks (generated
                                    into DIR, mode 0600, never overwritten), migrate D1, deploy, push the
                                    policies, check the deployed URL; safe to run again (docs/deploy.md).
                                    --dry-run: checks and the bundle only (no account needed)`;

const dev = formatUsage([
  {
    synopsis: ["dev [--port 8787]"],
    help: [
      "run gatepass locally on embedded defaults (local KV/D1, example policies);",
      "a save under policies/ is validated, tested and pushed (live on the next request);",
      "upstream overrides (GCP_STS_URL, AWS_STS_URL, ...) pass from the environment",
    ],
  },
  {
    synopsis: [
      "dev token [--kind gitlab|github] [--project P] [--ref R] [--ref-type branch|tag] [--protected true|false]",
      "[--pipeline-source S] [--event E] [--aud A] [--ttl SECONDS]",
    ],
    help: [
      "print a CI token from the local stand-in issuer (--kind github: GitHub Actions' claims; --event sets " +
        "event_name)",
    ],
  },
]);

const jwksCredential = formatUsage([
  {
    synopsis: [
      "jwks credential create --issuer NAME [--expires 90d] [--by WHO]",
      "[--local|--remote] [--env NAME] [--persist-to DIR] [--config FILE]",
    ],
    help: [
      "a new push credential for one issuer, printed once on stdout (only its hash is stored);",
      "it expires (default 90d, at most 365d)",
    ],
  },
  {
    synopsis: ["jwks credential list [--issuer NAME] [--json] [storage flags as above]"],
    help: ["every push credential: id, issuer, state, creation, expiry, last use"],
  },
  {
    synopsis: ["jwks credential revoke ID [--by WHO] [storage flags as above]"],
    help: ["refuse it from now on (gatepass reads D1 on every push: no delay)"],
  },
]);

const jwks = `${formatUsage([
  {
    synopsis: [
      "jwks push --issuer NAME (--file jwks.json | --url URL) [--drop-previous] [--by WHO]",
      "[--local|--remote] [--env NAME] [--persist-to DIR] [--config FILE] [--dir DIR]",
    ],
    help: [
      "store a private issuer's public keys (validated like the admin endpoint); keys it removes",
      "verify for the issuer's max token age, or stop at once with --drop-previous",
    ],
  },
])}
${jwksCredential}`;

const keys = formatUsage([
  {
    synopsis: ["keys generate [--alg ES256,RS256 | --alg ES256] [--out FILE [--force] | --dev-vars FILE]"],
    help: [
      "new signing key secret (current + next key per alg, both algs by default:",
      "azure targets need RS256); printed, or written to FILE (mode 0600; an existing",
      "FILE only with --force) — keep it: rotation needs it",
    ],
  },
  {
    synopsis: [
      "keys rotate --local [--dev-vars FILE] [--force]",
      "keys rotate --remote [--env NAME] [--from FILE|-] [--out FILE] [--force]",
    ],
    help: [
      "promote next → current, current → previous, add a new next;",
      "--remote reads the current secret from FILE/stdin, sets it with wrangler and",
      "only then writes it to --out (or stdout); a failed upload changes no file",
    ],
  },
  {
    synopsis: ["keys add --alg RS256 (--local [--dev-vars FILE] | --remote [--env NAME] [--from FILE|-] [--out FILE])"],
    help: [
      "add current + next keys for an algorithm the secret lacks, keeping its keys;",
      "sets and writes the secret as rotate does",
    ],
  },
]);

const policies = formatUsage([
  {
    synopsis: ["policies validate [--dir DIR]"],
    help: ["check policy files (strict parsing + lint), with file:line:column"],
  },
  { synopsis: ["policies test [--dir DIR]"], help: ["run the policy tests (*.test.yaml)"] },
  {
    synopsis: [
      "policies push [--dir DIR] [--by WHO] [--wait SECONDS]",
      STORAGE_SYNOPSIS,
      "policies push --url URL [--dir DIR] [--force] [--wait SECONDS]",
    ],
    help: [
      "validate, test, and make the policies active (KV) with history (D1); while another",
      "push or rollback runs, waits up to --wait seconds (default 120), then exits 3;",
      "--url: through a running gatepass with the job's ID token from GATEPASS_ID_TOKEN (no wrangler);",
      "--force: even if no rule would grant gatepass:policies-push any more",
    ],
  },
  {
    synopsis: [
      "policies plan [--dir DIR] [--against VERSION] [--days N] [--no-replay] [--json|--markdown]",
      `${STORAGE_SYNOPSIS} | --url URL`,
      "policies plan --against-dir BASE [--dir DIR] [--json|--markdown]",
    ],
    help: [
      "what pushing the local policies would change: rules, privileged reach and lint per target, then every",
      "identity seen in the last N days (default 30) replayed under both; exit 0 no decision changes, 3 changes;",
      "--against-dir: the changes against another policies directory only (a merge request's target branch)",
    ],
  },
  {
    synopsis: ["policies diff V1 V2 [--json|--markdown]", STORAGE_SYNOPSIS],
    help: ["the changes between two pushed versions; exit 0 none, 3 some"],
  },
  {
    synopsis: ["policies history [--limit N] [--attempts]", STORAGE_SYNOPSIS, "policies history --url URL [--limit N]"],
    help: [
      "the newest pushed versions (--limit, default 50, at most 1000);",
      "--attempts: every push and rollback and what became of it",
    ],
  },
  {
    synopsis: [
      "policies rollback VERSION [--by WHO] [--wait SECONDS]",
      STORAGE_SYNOPSIS,
      "policies rollback VERSION --url URL [--force] [--wait SECONDS]",
    ],
    help: ["make a pushed version active again (refused if today's lint refuses it)"],
  },
  {
    synopsis: ["policies explain (--claims FILE | --token FILE) [--issuer NAME] [--target T]... [--dir DIR]"],
    help: [
      "why a job gets or is denied each target, with the job's and the rules' ids;",
      "exit 0 when every target shown is allowed, 1 when one is denied",
    ],
  },
  { synopsis: ["policies schema"], help: ["print the JSON Schema of policy files"] },
]);

const status = formatUsage([
  {
    synopsis: ["status --url URL [--token-file FILE] [--json]"],
    help: [
      "a running gatepass's status (GET /v1/admin/status); the admin token comes from",
      "--token-file or GATEPASS_ADMIN_TOKEN, never the command line; --url defaults to",
      "GATEPASS_URL (https, or http on loopback); --json prints the answer as it came",
    ],
  },
]);

/** Usage text by command group, in the order `gatepass --help` lists them. */
/** Each group's first line of `gatepass <group> --help`: what it handles, keys and jwks told apart. */
export const SUMMARY = {
  audit: "gatepass audit: read gatepass's audit events (D1 audit_events), local or deployed",
  deploy: "gatepass deploy: from a clone to a running gatepass on Cloudflare Workers, safe to run again",
  dev: "gatepass dev: gatepass locally on embedded defaults, and CI tokens from its stand-in issuers",
  jwks:
    "gatepass jwks: CI issuers' verification keys (the public keys CI tokens are checked with) and their push " +
    "credentials; gatepass's own signing keys are `gatepass keys`",
  keys:
    "gatepass keys: gatepass's own signing keys (the GATEPASS_SIGNING_KEYS secret its tokens are signed with); " +
    "CI issuers' verification keys are `gatepass jwks`",
  policies: "gatepass policies: policy files: validate, test, explain, plan, push, history and rollback",
  status: "gatepass status: a running gatepass's policy, issuer keys, signing keys and errors",
} as const;

export const USAGE = { audit, deploy, dev, jwks, jwksCredential, keys, policies, status } as const;

/** The command groups, `gatepass <group> ...`. */
export const GROUPS = ["audit", "deploy", "dev", "jwks", "keys", "policies", "status"] as const;
export type Group = (typeof GROUPS)[number];

/** Every command's words (`["jwks", "credential", "create"]`), read from the synopses: each synopsis line
 *  starts with its command's words, up to the first option, argument or alternative. */
export const COMMANDS: readonly (readonly string[])[] = GROUPS.flatMap((group) =>
  [...USAGE[group].matchAll(/^  ([a-z][\w-]*(?: [a-z][\w-]*)*)(?= |$)/gm)].map((match) => match[1]!.split(" ")),
);

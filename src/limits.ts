// Every size, time-to-live, skew and cooldown gatepass enforces, each with the reason for its value.
// Other modules import from here; a bound written into logic elsewhere is a bug. (The lengths inside
// a field's format, such as a name pattern in policy/schema-patterns.ts or a role pattern in
// policy/target-schema.ts, stay with that format.)

const SECOND = 1;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// ---- request parsing -----------------------------------------------------------------------
/**
 * GitLab ID tokens are ~1–2 KiB; AWS refuses web-identity tokens over 20 000 chars. 16 KiB leaves room and caps parse
 * cost.
 */
export const MAX_TOKEN_BYTES = 16 * 1024;
/** Request bodies are a handful of form fields (plus at most one token). */
export const MAX_REQUEST_BODY_BYTES = 32 * 1024;
/** A kid is an opaque lookup key; GitLab's are 43-char RFC 7638 thumbprints. */
export const MAX_KID_LENGTH = 128;
/**
 * Credential parameters (scopes, audience, token_file, ...) are short by nature; longer ones are refused before use.
 */
export const MAX_SCOPES = 20;
export const MAX_SCOPE_LENGTH = 256;
export const MAX_PARAM_VALUE_LENGTH = 512;
/**
 * Parameters in one request (query string and body together): no endpoint takes more than 7. Counted
 * before they are parsed, so 3 000 form fields or 32 KiB of nested JSON are refused before they cost
 * several exchanges' worth of parsing.
 */
export const MAX_REQUEST_PARAMETERS = 16;
/** Admin Authorization headers longer than this are refused before hashing. */
export const MAX_ADMIN_HEADER_LENGTH = 1024;

// ---- token verification --------------------------------------------------------------------
/** Clock skew tolerated for exp/nbf/iat between issuer, gatepass and CI runner (RFC 8725 advice: small). */
export const CLOCK_SKEW_SECONDS = 60 * SECOND;
/** Default maximum token age from iat: GitLab tokens live as long as the job timeout (up to a month). */
export const DEFAULT_MAX_TOKEN_AGE_SECONDS = 1 * HOUR;
/** Upper bound an issuer may configure for max token age; beyond a day a leaked token is a standing credential. */
export const MAX_CONFIGURABLE_TOKEN_AGE_SECONDS = 1 * DAY;
/** Claim values longer than this are refused: no GitLab claim comes near it, and it bounds matching cost. */
export const MAX_CLAIM_VALUE_LENGTH = 1024;
/** Array claims (groups_direct, aud) are capped so evaluation stays bounded. */
export const MAX_CLAIM_ARRAY_LENGTH = 200;
/** Minimum RSA modulus size (RFC 8725 §3.5, NIST SP 800-131A). */
export const MIN_RSA_BITS = 2048;
/** Maximum RSA modulus size: verify cost grows with the square of the size; no CI issuer uses more than 4096. */
export const MAX_RSA_BITS = 8192;

// ---- issuer keys (JWKS) ----------------------------------------------------------------------
/** Discovery and JWKS documents are a few KiB; octo-sts caps at 100 KiB. Bigger is an attack or a misconfiguration. */
export const MAX_DISCOVERY_BYTES = 100 * 1024;
export const MAX_JWKS_BYTES = 100 * 1024;
/** A JWKS with more keys than this is not a real issuer's. */
export const MAX_JWKS_KEYS = 50;
/** One issuer fetch (discovery or JWKS) must answer within this; verification waits on it. */
export const JWKS_FETCH_TIMEOUT_MS = 3_000;
/**
 * Cache-Control max-age is honoured within [min, max]: GitLab sends 86400, which is too long to notice a rotation by
 * age alone.
 */
export const JWKS_MIN_FRESH_SECONDS = 5 * MINUTE;
export const JWKS_MAX_FRESH_SECONDS = 1 * HOUR;
/** Used when the issuer sends no usable Cache-Control. */
export const JWKS_DEFAULT_FRESH_SECONDS = 15 * MINUTE;
/** When the issuer is down, cached keys keep serving until this long after they were fetched; then fail closed. */
export const JWKS_MAX_STALE_SECONDS = 1 * DAY;
/** At most one refetch per issuer per cooldown for an unknown kid, so a kid flood cannot hammer the issuer. */
export const JWKS_UNKNOWN_KID_COOLDOWN_SECONDS = 1 * MINUTE;
/** After a failed fetch, wait this long before trying the network again (requests are served from cache meanwhile). */
export const JWKS_FAILURE_BACKOFF_SECONDS = 30 * SECOND;
/** How long pushed keys are kept in KV: they never expire by age, the admin replaces them. */
export const PUSHED_JWKS_MAX_AGE_SECONDS = 365 * DAY;
/** The cron refreshes a key set when it will turn stale within this window. */
export const JWKS_REFRESH_AHEAD_SECONDS = 10 * MINUTE;
/** A warm isolate re-reads pushed keys from KV this often (in the background), so a push reaches every isolate. */
export const PUSHED_JWKS_RECHECK_SECONDS = 1 * MINUTE;
/**
 * Checked token headers remembered per isolate (one per issuer key in practice); the cache is emptied when full, so a
 * flood of odd headers costs memory only up to this.
 */
export const MAX_CACHED_HEADERS = 256;
/** Same-origin redirects followed for discovery/JWKS; redirects to another origin are never followed. */
export const JWKS_MAX_REDIRECTS = 3;

// ---- policy ----------------------------------------------------------------------------------
/** A warm isolate re-reads the active snapshot from KV at most this often. */
export const POLICY_RECHECK_MS = 5_000;
/**
 * A stored policy snapshot (index and rules) larger than this is refused. A cold isolate holds it as one
 * string (ASCII: a byte per character) next to the bytes it hashes, in 128 MB of isolate memory; 50 000
 * typical rules take about 12 MiB (`npm run bench -- policy`).
 */
export const MAX_POLICY_SNAPSHOT_BYTES = 24 * 1024 * 1024;
/**
 * KV holds a stored snapshot in values of at most this many bytes (KV allows 25 MiB per value): a cold
 * isolate reads them in parallel (a 50 000-rule snapshot is about 25), and a snapshot of a few
 * thousand rules already spans two, so the chunked path is the one every large push takes.
 */
export const POLICY_KV_CHUNK_BYTES = 512 * 1024;
/** The most chunks a stored snapshot can have; a pointer naming more is refused before any read. */
export const MAX_POLICY_KV_CHUNKS = Math.ceil(MAX_POLICY_SNAPSHOT_BYTES / POLICY_KV_CHUNK_BYTES);
/**
 * Path patterns are indexed by at most this many literal leading segments (`a/b/c/d` of `a/b/c/d/e/*`):
 * looking up a token's value costs a map lookup per segment, and rules seldom share more than the first few.
 */
export const MAX_INDEX_PREFIX_SEGMENTS = 4;
/** Glob patterns and matched values are capped so matching cost is bounded (matching is linear in both). */
export const MAX_PATTERN_LENGTH = 256;
/**
 * Evaluation looks only at the rules a token can match (src/policy/rule-index.ts), so this bounds the push,
 * the stored size and a cold isolate's load (measured in docs/benchmarks.md), not per-request cost.
 */
export const MAX_RULES = 50_000;
/** Issuers and targets are configured by hand; more than this is a generated file gone wrong. */
export const MAX_ISSUERS = 100;
export const MAX_TARGETS = 1_000;
/** An explanation lists at most this many rules (closest first): enough to act on, small enough for a response. */
export const MAX_EXPLAINED_RULES = 20;
/** Values in one any-of condition list: evaluation tries each, so the list is bounded. */
export const MAX_CONDITION_ALTERNATIVES = 100;
/**
 * YAML aliases and `<<` merge keys let files share blocks; they can also multiply data (billion laughs), so they are
 * capped.
 */
export const MAX_YAML_ALIASES = 100;
/** Google ID token audiences one gcp target may list (each one a relying party the target serves). */
export const MAX_ID_TOKEN_AUDIENCES = 20;
/** Default upper bound of a target's credential lifetime: one hour, the common cloud default. */
export const TARGET_DEFAULT_MAX_LIFETIME_SECONDS = 1 * HOUR;
/**
 * A target's lifetime bound may not be shorter (credentials would expire before use) or longer (12 h is the longest
 * any cloud grants).
 */
export const TARGET_MIN_LIFETIME_SECONDS = 1 * MINUTE;
export const TARGET_MAX_LIFETIME_SECONDS = 12 * HOUR;
/**
 * D1 refuses SQL statements over 100 KB (and rows over 1 MB): policy history is written in chunk rows of at most this.
 */
export const D1_SQL_CHUNK_BYTES = 90 * 1024;

// ---- minted tokens ---------------------------------------------------------------------------
/** Default and maximum lifetime of tokens gatepass mints; GCP requires exp - iat < 48 h, we stay far below. */
export const MINTED_TOKEN_DEFAULT_LIFETIME_SECONDS = 5 * MINUTE;
export const MINTED_TOKEN_MAX_LIFETIME_SECONDS = 1 * HOUR;
/** GCP maps sub to google.subject, which must be at most 127 bytes. */
export const MAX_SUBJECT_BYTES = 127;
/** A previous signing key stays published this long after rotation: longer than any token it signed lives. */
export const PREVIOUS_KEY_PUBLISH_SECONDS = MINTED_TOKEN_MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS;
/** Discovery and JWKS documents may be cached by relying parties for this long. */
export const ISSUER_DOCUMENT_MAX_AGE_SECONDS = 5 * MINUTE;

// ---- upstream exchanges ----------------------------------------------------------------------
/** Credential lifetime when the caller does not ask: the clouds' own customary default. */
export const DEFAULT_CREDENTIAL_LIFETIME_SECONDS = 1 * HOUR;
/** One upstream attempt must answer within this. */
export const UPSTREAM_TIMEOUT_MS = 5_000;
/** Retries only for 429/5xx/network errors; total attempts including the first. */
export const UPSTREAM_MAX_ATTEMPTS = 3;
/** Exponential backoff base with full jitter between attempts. */
export const UPSTREAM_BACKOFF_BASE_MS = 100;
/** Upstream bodies larger than this are not parsed. */
export const MAX_UPSTREAM_BODY_BYTES = 256 * 1024;
/** AWS: DurationSeconds range for AssumeRoleWithWebIdentity. */
export const AWS_MIN_DURATION_SECONDS = 15 * MINUTE;
export const AWS_MAX_DURATION_SECONDS = 12 * HOUR;
/** GCP generateAccessToken: 1 h unless an org policy extends it to 12 h. */
export const GCP_MAX_ACCESS_TOKEN_LIFETIME_SECONDS = 12 * HOUR;
/**
 * Upper bound on any expiry an upstream reports (expires_in, lease_duration, or an absolute time
 * minus now). The longest credential any supported cloud issues is a day (Entra's configurable
 * token lifetime; AWS and GCP stop at 12 h), so anything beyond is a broken or hostile answer: it is
 * refused as malformed instead of being formatted (a huge value would overflow Date) or handed on.
 */
export const MAX_UPSTREAM_EXPIRY_SECONDS = 1 * DAY;

// ---- audit and operations --------------------------------------------------------------------
export const DEFAULT_AUDIT_RETENTION_DAYS = 90;
/** Audit events inserted by one statement (an event is usually < 1 KiB of JSON). */
export const MAX_AUDIT_BATCH_EVENTS = 200;
/**
 * JSON length (UTF-16 units) of one statement's events: even all non-ASCII, at most 1.5 MB of UTF-8, under D1's 2 MB
 * value cap.
 */
export const MAX_AUDIT_BATCH_LENGTH = 512 * 1024;
/**
 * Before inserting a partial batch, a request waits this long so concurrent events join it (audit lags
 * by as much); a full batch is inserted at once. Each insert has a fixed cost besides its rows; at
 * 250 ms rather than 50 an exchange under load took about 3.6% less machine CPU (`npm run bench -- cpu`,
 * docs/benchmarks.md).
 */
export const AUDIT_BATCH_LINGER_MS = 250;
/**
 * A request that drains the audit queue starts no insert after this long, so its waitUntil ends within
 * this + the linger + one insert timeout (about 15 s), well inside the 30 s Workers grants a waitUntil
 * after the response; the next request's write starts a new drain. At local D1 speed (tens of ms per
 * insert, AUDIT_MAX_INSERTS_IN_FLIGHT at once) 5 s empties a full queue several times over.
 */
export const AUDIT_DRAIN_TERM_MS = 5_000;
/**
 * Audit inserts under way at once per isolate. One at a time capped draining at one batch per insert
 * round trip; a few overlapping keep up with a flood without letting a slow D1 pile up statements.
 */
export const AUDIT_MAX_INSERTS_IN_FLIGHT = 3;
/**
 * Audit events an isolate holds (queued, or in a batch being inserted), and their size in memory
 * (a queued event is one JSON string: one byte a character, two if any is beyond Latin-1). Without a
 * cap a junk-token flood queued 189 600 events in 22 s (issue 22); a Worker isolate has 128 MB.
 * 10 000 events is ten seconds of issuances at 1 000 a second (more than one isolate served in
 * `npm run bench -- throughput`), so a D1 stall up to the insert timeout is absorbed; 8 MiB (with the
 * batches in flight, under 10 MiB) keeps the queue a small part of the isolate.
 * A verified caller's event over the cap, once no junk is left to fold, goes to the Worker log in full
 * (audit_queue_full): never silently dropped.
 */
export const MAX_AUDIT_QUEUE_EVENTS = 10_000;
export const MAX_AUDIT_QUEUE_BYTES = 8 * 1024 * 1024;
/**
 * The share of that queue open to junk: events of requests of callers who did not authenticate (refused
 * tokens, unknown paths, failed admin or push authentication), which anyone can send at line rate, and
 * verified callers' over-limit refusals, so one caller's flood holds at most this share. Beyond it they are
 * folded into counted summary rows (src/audit/refusal-fold.ts) and queued junk gives way to verified callers'
 * events, so a flood never crowds out an issuance. 1 000 keeps every refusal of an ordinary burst
 * (a misconfigured pipeline retrying) as its own row.
 */
export const MAX_AUDIT_QUEUED_JUNK_EVENTS = 1_000;
export const MAX_AUDIT_QUEUED_JUNK_BYTES = 1024 * 1024;
/**
 * Folded refusals are written as one summary row per (status, code, over-limit caller) once per this
 * window, not sooner even when D1 keeps up (so summaries too are a bounded number of rows a second):
 * an evicted isolate loses at most this window's counts.
 */
export const AUDIT_FOLD_WINDOW_MS = 1_000;
/**
 * Junk (and over-limit refusals of verified callers) that becomes rows of its own, per isolate and
 * second, whatever D1's speed: beyond it, refusals fold into per-second summary rows. With a healthy
 * D1 the queue share above never fills, so without a rate budget every junk refusal was a ~400-byte
 * row (0.8 MB/s at 1 900 req/s: D1's 10 GB in 3.6 h, issue 30). 20 a second keeps every refusal of
 * an ordinary burst (a misconfigured pipeline retrying) as its own row.
 */
export const AUDIT_JUNK_ROWS_PER_SECOND = 20;
/**
 * Junk rows (own rows and summaries) an isolate stores per UTC day. Beyond it, refusals are counted
 * (admin status, audit_junk_daily_cap log line) but not stored, so a flood lasting all day costs D1 at
 * most about this many rows per isolate (docs/operations.md has the measured bytes): 50 000 rows of
 * at most ~500 bytes stored (indexes included), about 25 MB a day, about 400 isolate-days before D1's 10 GB fills.
 */
export const AUDIT_MAX_JUNK_ROWS_PER_DAY = 50_000;
/**
 * Request log lines of callers who did not authenticate, per isolate and second: beyond it they are
 * counted into one `requests_folded` line per second (per status and code), since each costs as much
 * in Workers Logs as the audit row it stands beside. Verified callers' lines are never folded.
 */
export const LOG_JUNK_LINES_PER_SECOND = 20;
/**
 * A token's unverified `iss` (or a path issuer, a credential id an unauthenticated caller names) is recorded at most
 * this long.
 */
export const MAX_CLAIMED_VALUE_LENGTH = 256;
/**
 * An insert D1 has not answered within this is logged as failed (its events go to the Worker log in
 * full): the request's waitUntil may be cut off any moment after 30 s, and then they would be lost unseen.
 */
export const AUDIT_INSERT_TIMEOUT_MS = 10_000;
/**
 * Identities recorded for `policies plan` replay (src/audit/seen-identities.ts). A request only notes
 * its identity; an isolate flushes its notes in one statement at most every 10 s (or when 2 000 wait:
 * under a second of a busy isolate's verified requests, a few hundred KB of references). A row's claims
 * are capped at 8 KiB of JSON (GitLab's are about 1 KiB; a larger set is not recorded, and counted),
 * and it keeps at most 16 targets. The table keeps at most 100 000 rows (the cron drops the least
 * recently seen beyond that, and everything older than the audit retention): at most 100 000 × ~9 KB,
 * under 1 GB, and about 100 MB at GitLab's usual claim sizes.
 */
export const SEEN_IDENTITIES_FLUSH_MS = 10_000;
export const MAX_SEEN_IDENTITY_NOTES = 2_000;
export const MAX_SEEN_IDENTITY_CLAIMS_LENGTH = 8 * 1024;
export const MAX_SEEN_IDENTITY_TARGETS = 16;
export const MAX_SEEN_IDENTITIES = 100_000;
/** Like an audit insert: a flush D1 has not answered within this is logged as failed. */
export const SEEN_IDENTITIES_FLUSH_TIMEOUT_MS = 10_000;
/** The RATE_LIMITER binding's period (wrangler.toml `simple.period`): what Retry-After tells a throttled job. */
export const RATE_LIMIT_PERIOD_SECONDS = 60;
/** Audit queries: rows when no limit is asked, at most rows per answer, and the longest project or target filter. */
export const DEFAULT_AUDIT_QUERY_ROWS = 100;
export const MAX_AUDIT_QUERY_ROWS = 500;
export const MAX_AUDIT_FILTER_LENGTH = 256;
/**
 * `gatepass deploy` checks GATEPASS_ISSUER for this long after `wrangler deploy`: a route or custom
 * domain added with the first deploy can take a minute or two (DNS, certificate) before it answers.
 */
export const DEPLOY_CHECK_TIMEOUT_MS = 180_000;
export const DEPLOY_CHECK_INTERVAL_MS = 5_000;
/** One check request: the deployed Worker answers /healthz and discovery without any upstream call. */
export const DEPLOY_CHECK_REQUEST_TIMEOUT_MS = 10_000;

// ---- pushed keys and push credentials ----------------------------------------------------------
/**
 * Issuer-scoped push credentials expire: 90 days unless asked otherwise (a leaked CI variable stops
 * working within a quarter, and a quarterly renewal is a routine an admin keeps), at most a year (no
 * standing credential; GitLab caps its own access tokens at a year too), at least an hour.
 */
export const PUSH_CREDENTIAL_DEFAULT_LIFETIME_SECONDS = 90 * DAY;
export const PUSH_CREDENTIAL_MAX_LIFETIME_SECONDS = 365 * DAY;
export const PUSH_CREDENTIAL_MIN_LIFETIME_SECONDS = 1 * HOUR;
/** Credentials listed by `gatepass jwks credential list`: more than this is not a hand-kept set. */
export const MAX_LISTED_PUSH_CREDENTIALS = 1_000;
/** The cron warns when a pushed issuer's last push is older than this: twice the template's hourly schedule. */
export const DEFAULT_PUSHED_KEYS_WARN_AFTER_HOURS = 2;
/** PUSHED_KEYS_WARN_AFTER_HOURS may be 1 h to 30 days; beyond that the warning comes too late to act on. */
export const MAX_PUSHED_KEYS_WARN_AFTER_HOURS = 30 * 24;

export const TIME = { SECOND, MINUTE, HOUR, DAY } as const;

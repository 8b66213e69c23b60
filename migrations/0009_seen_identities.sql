-- The distinct identities gatepass verified, for `gatepass policies plan` to replay against a proposed
-- policy (docs/storage.md, "D1 seen_identities"). One row per issuer and decision-relevant claim set:
-- the normalised claims a rule can name, without the per-job ids and times that would make every job
-- its own row. No token and nothing usable as a credential is stored. Pruned with the audit retention.
CREATE TABLE seen_identities (
  claims_sha256 TEXT PRIMARY KEY,           -- SHA-256 of the issuer and the canonical claims
  issuer        TEXT NOT NULL,              -- the configured issuer's name
  claims        TEXT NOT NULL,              -- canonical JSON of the recorded claims
  first_seen    TEXT NOT NULL,              -- ISO 8601
  last_seen     TEXT NOT NULL,              -- ISO 8601
  count         INTEGER NOT NULL CHECK (count > 0),
  targets       TEXT NOT NULL DEFAULT '[]', -- JSON array of the targets asked for (at most 16)
  last_decision TEXT CHECK (last_decision IN ('allow', 'deny', 'error'))
);
CREATE INDEX seen_identities_last_seen ON seen_identities (last_seen);

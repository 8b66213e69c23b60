-- gatepass storage schema (see docs/storage.md). Raw tokens are never stored: only their SHA-256.

-- Every policy snapshot ever pushed; exactly one row is active.
CREATE TABLE policy_versions (
  version       TEXT PRIMARY KEY,           -- SHA-256 of the canonical snapshot
  source_digest TEXT NOT NULL,              -- SHA-256 over the policy source files
  snapshot      TEXT NOT NULL,              -- the snapshot JSON, for rollback
  pushed_by     TEXT NOT NULL,
  pushed_at     TEXT NOT NULL,              -- ISO 8601
  active        INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
);
CREATE INDEX policy_versions_pushed_at ON policy_versions (pushed_at);

-- One row per request to a credential or identity endpoint, allowed or denied.
CREATE TABLE audit_events (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  ts             TEXT NOT NULL,             -- ISO 8601
  request_id     TEXT NOT NULL,
  route          TEXT NOT NULL,
  issuer         TEXT,
  token_sha256   TEXT,
  jti            TEXT,
  project_id     TEXT,
  project_path   TEXT,
  namespace_id   TEXT,
  namespace_path TEXT,
  ref            TEXT,
  ref_type       TEXT,
  pipeline_id    TEXT,
  job_id         TEXT,
  user_login     TEXT,
  target         TEXT,
  rule           TEXT,
  decision       TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'error')),
  error_code     TEXT,
  status         INTEGER NOT NULL,
  upstream_ms    INTEGER,
  policy_version TEXT
);
CREATE INDEX audit_events_ts ON audit_events (ts);
CREATE INDEX audit_events_project ON audit_events (project_path, ts);
CREATE INDEX audit_events_target ON audit_events (target, ts);

-- Per-job credential counts for targets with max_uses_per_job.
CREATE TABLE use_counters (
  issuer     TEXT NOT NULL,
  job_id     TEXT NOT NULL,
  target     TEXT NOT NULL,
  uses       INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,              -- seconds since epoch; rows past it are pruned
  PRIMARY KEY (issuer, job_id, target)
);

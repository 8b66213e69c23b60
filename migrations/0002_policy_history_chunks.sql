-- Policy history beyond one D1 row (rows and strings are capped at 1 MB; a 50 000-rule policy is
-- about 12 MB). A version pushed from now on keeps its canonical body (the text its version is the
-- SHA-256 of) in chunk rows, and `snapshot` stays empty; rows pushed before keep their whole snapshot
-- in `snapshot` with snapshot_chunks = 0 and stay readable as they are. See docs/storage.md.
ALTER TABLE policy_versions ADD COLUMN snapshot_chunks INTEGER NOT NULL DEFAULT 0;

CREATE TABLE policy_history_chunks (
  version TEXT NOT NULL,                    -- policy_versions.version
  seq     INTEGER NOT NULL,                 -- 0, 1, ...: the body is the chunks in this order
  data    TEXT NOT NULL,                    -- at most D1_SQL_CHUNK_BYTES of the body
  PRIMARY KEY (version, seq)
);

-- Pushes and rollbacks serialised through D1 (issue 30): a lease row taken with a conditional upsert,
-- a log of every attempt, and each version's stored header (for the KV `fallbacks` list and the chunk
-- clean-up). See docs/storage.md, "Write protocol".

-- At most one row: the push or rollback allowed to write KV `active` now.
CREATE TABLE policy_push_lease (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  holder     TEXT NOT NULL,                 -- policy_pushes.attempt of the holder
  held_by    TEXT NOT NULL,                 -- who runs it (--by), for the refusal sentence
  expires_at INTEGER NOT NULL               -- seconds since the epoch, D1's clock; a dead pusher's lease lapses
);

-- One row per push or rollback attempt, whatever became of it.
CREATE TABLE policy_pushes (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT, -- order of attempts (and of activations)
  attempt     TEXT NOT NULL UNIQUE,         -- random id of the attempt
  action      TEXT NOT NULL CHECK (action IN ('push', 'rollback')),
  version     TEXT NOT NULL,
  pushed_by   TEXT NOT NULL,
  started_at  INTEGER NOT NULL,             -- seconds since the epoch, D1's clock
  finished_at INTEGER,
  outcome     TEXT NOT NULL CHECK (outcome IN ('started', 'activated', 'busy', 'lost', 'failed')),
  activation  INTEGER,                      -- 1, 2, ...: order of activations (activated only)
  replaced    TEXT,                         -- the version active before it (activated only)
  detail      TEXT                          -- why it did not activate
);
CREATE INDEX policy_pushes_version ON policy_pushes (version);

-- The KV header of the version's stored snapshot (NULL for versions not activated since this migration).
ALTER TABLE policy_versions ADD COLUMN stored_header TEXT;

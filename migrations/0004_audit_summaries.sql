-- Summary rows for audit events folded under a flood (src/audit/refusal-fold.ts, docs/storage.md). When an
-- isolate's audit queue has no room for the refusals of unverified callers, it counts them instead:
-- one row per (status, error code) and time window. Existing rows are single requests and keep NULL.
ALTER TABLE audit_events ADD COLUMN folded_count INTEGER CHECK (folded_count IS NULL OR folded_count > 0); -- NULL: one request; n: a summary of n refusals
ALTER TABLE audit_events ADD COLUMN folded_from TEXT;     -- ISO 8601 time of a summary's first refusal (ts is its last)

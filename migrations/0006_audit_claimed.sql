-- What an unauthenticated caller claimed, kept apart from what gatepass verified (src/audit/audit-event.ts,
-- docs/storage.md). issuer and actor hold only verified values; a refused token's unverified issuer
-- (by configured name when its iss is one of the policy's issuers, else its iss, at most 256
-- characters) and a path issuer or push credential id presented without a matching secret go here.
ALTER TABLE audit_events ADD COLUMN claimed_issuer TEXT; -- unverified: anyone can send any value
ALTER TABLE audit_events ADD COLUMN claimed_actor TEXT;  -- unverified: a gpk_… id whose secret did not match, or was not checked
CREATE INDEX audit_events_claimed_issuer ON audit_events (claimed_issuer, ts);
CREATE INDEX audit_events_issuer ON audit_events (issuer, ts);

-- Issuer-scoped push credentials (`gatepass jwks credential create|list|revoke`): each one may only
-- replace the pushed keys of one issuer (PUT /v1/admin/issuers/<issuer>/jwks). The credential is
-- printed once and never stored: only its SHA-256. See docs/storage.md.
CREATE TABLE push_credentials (
  id            TEXT PRIMARY KEY,           -- gpk_<16 hex>: the credential's public part, shown in audit and status
  issuer        TEXT NOT NULL,              -- the one issuer name it pushes keys for
  secret_sha256 TEXT NOT NULL,              -- SHA-256 (hex) of the whole credential
  created_by    TEXT NOT NULL,
  created_at    INTEGER NOT NULL,           -- seconds since epoch
  expires_at    INTEGER NOT NULL,           -- seconds since epoch; refused from then on
  revoked_at    INTEGER,                    -- seconds since epoch; refused from then on
  revoked_by    TEXT,
  last_used_at  INTEGER                     -- seconds since epoch of the last accepted use
);
CREATE INDEX push_credentials_issuer ON push_credentials (issuer, created_at);

-- Who made an admin request: "admin" (the admin token) or a push credential's id; null elsewhere.
ALTER TABLE audit_events ADD COLUMN actor TEXT;

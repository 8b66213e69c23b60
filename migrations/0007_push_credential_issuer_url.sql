-- Push credentials are bound to the issuer's URL as well as its name: a name reused later for another
-- GitLab (policies edited to point `corp-gitlab` elsewhere) must not inherit the old credentials, which
-- would let whoever holds them push keys that then verify the new GitLab's tokens. gatepass refuses a
-- credential whose issuer_url differs from the live policy's URL for that name, and one without an
-- issuer_url (made before this migration: its URL is unknown) with push_credential_issuer_changed.
ALTER TABLE push_credentials ADD COLUMN issuer_url TEXT;

-- Bearer credentials of the HTTP API. Only the SHA-256 of a token is kept, never the token itself.
-- A principal's kind and attributes live here: the registry, not the caller, says who a principal is.
CREATE TABLE credentials (
    id              TEXT PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('principal', 'approver', 'admin')),
    subject_id      TEXT NOT NULL,
    kind            TEXT,
    attributes_json TEXT,
    token_sha256    TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    CHECK ((role = 'principal') = (kind IS NOT NULL AND attributes_json IS NOT NULL))
) STRICT;
CREATE INDEX credentials_subject ON credentials (role, subject_id)

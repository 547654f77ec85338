-- Bearer credentials of the HTTP API. Only the SHA-256 of a token is kept, never the token itself.
-- A principal's kind and attributes live here: the registry, not the caller, says who a principal is.
CREATE TABLE credentials (
    id              text PRIMARY KEY,
    role            text NOT NULL CHECK (role IN ('principal', 'approver', 'admin')),
    subject_id      text NOT NULL,
    kind            text,
    attributes_json text,
    token_sha256    text NOT NULL UNIQUE,
    created_at      bigint NOT NULL,
    revoked_at      bigint,
    CHECK ((role = 'principal') = (kind IS NOT NULL AND attributes_json IS NOT NULL))
);
CREATE INDEX credentials_subject ON credentials (role, subject_id);

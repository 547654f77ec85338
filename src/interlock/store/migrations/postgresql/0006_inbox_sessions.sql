-- Approver web sessions live in the store, so every server process and node knows them and a restart
-- signs nobody out. Only the SHA-256 of a session id is kept, never the cookie's value.
CREATE TABLE inbox_sessions (
    key_sha256      TEXT PRIMARY KEY,
    credential_hash TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    csrf_token      TEXT NOT NULL,
    last_seen       BIGINT NOT NULL
);
CREATE INDEX inbox_sessions_seen ON inbox_sessions (last_seen);

-- Requests, approvals, grants and the audit log. Times are integer microseconds since the epoch (UTC).
CREATE TABLE requests (
    id            TEXT PRIMARY KEY,
    principal_id  TEXT NOT NULL,
    action        TEXT NOT NULL,
    digest        TEXT NOT NULL,
    request_json  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('allowed', 'denied', 'pending_approval', 'approved', 'rejected')),
    decision_json TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER
) STRICT;
CREATE INDEX requests_history ON requests (principal_id, action, created_at);

CREATE TABLE approvals (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    approver_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    UNIQUE (request_id, approver_id)
) STRICT;

CREATE TABLE grants (
    jti            TEXT PRIMARY KEY,
    request_id     TEXT NOT NULL UNIQUE REFERENCES requests (id),
    executor       TEXT NOT NULL,
    token          TEXT NOT NULL,
    digest         TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    consumed_at    INTEGER,
    result         TEXT CHECK (result IN ('succeeded', 'failed')),
    result_detail  TEXT
) STRICT;

CREATE TABLE audit (
    idx        INTEGER PRIMARY KEY,
    leaf       BLOB NOT NULL,
    leaf_hash  BLOB NOT NULL,
    chain_hash BLOB NOT NULL
) STRICT;

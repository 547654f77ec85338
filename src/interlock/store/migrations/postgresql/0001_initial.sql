-- Requests, approvals, grants and the audit log, as in the SQLite store. Times are integer microseconds since
-- the epoch (UTC), as there, so a record reads back identically from either store.
CREATE TABLE requests (
    id            text PRIMARY KEY,
    principal_id  text NOT NULL,
    action        text NOT NULL,
    digest        text NOT NULL,
    request_json  text NOT NULL,
    -- What velocity sums read, parsed once when the request is written rather than on every sum.
    params        jsonb GENERATED ALWAYS AS ((request_json::jsonb) -> 'params') STORED,
    status        text NOT NULL CHECK (status IN ('allowed', 'denied', 'pending_approval', 'approved', 'rejected')),
    decision_json text NOT NULL,
    created_at    bigint NOT NULL,
    expires_at    bigint
);
CREATE INDEX requests_history ON requests (principal_id, action, created_at);
CREATE INDEX requests_pending ON requests (created_at, id COLLATE "C") WHERE status = 'pending_approval';

CREATE TABLE approvals (
    id          text PRIMARY KEY,
    request_id  text NOT NULL REFERENCES requests (id),
    approver_id text NOT NULL,
    channel     text NOT NULL,
    verdict     text NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment     text NOT NULL,
    at          bigint NOT NULL,
    UNIQUE (request_id, approver_id)
);

CREATE TABLE grants (
    jti            text PRIMARY KEY,
    request_id     text NOT NULL UNIQUE REFERENCES requests (id),
    executor       text NOT NULL,
    token          text NOT NULL,
    digest         text NOT NULL,
    policy_version text NOT NULL,
    issued_at      bigint NOT NULL,
    expires_at     bigint NOT NULL,
    consumed_at    bigint,
    result         text CHECK (result IN ('succeeded', 'failed')),
    result_detail  text
);

-- The SQLite store's `chain_hash` column is left out: its 0005 drops it, and no PostgreSQL log ever had one.
CREATE TABLE audit (
    idx       bigint PRIMARY KEY,
    leaf      bytea NOT NULL,
    leaf_hash bytea NOT NULL
);

-- Break-glass: an approval given alone under a policy `break_glass` entry is flagged, and opens a post-hoc
-- review that two other people must sign off.
ALTER TABLE approvals ADD COLUMN break_glass boolean NOT NULL DEFAULT false;

CREATE TABLE break_glass_reviews (
    request_id    text PRIMARY KEY REFERENCES requests (id),
    entry_id      text NOT NULL,
    used_by       text NOT NULL,
    justification text NOT NULL,
    opened_at     bigint NOT NULL,
    due_at        bigint NOT NULL,
    closed_at     bigint
);
CREATE INDEX break_glass_open ON break_glass_reviews (closed_at, due_at);

CREATE TABLE break_glass_signoffs (
    -- Sign-offs read back in the order they were written when two share a time (SQLite's rowid order).
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    id          text PRIMARY KEY,
    request_id  text NOT NULL REFERENCES break_glass_reviews (request_id),
    reviewer_id text NOT NULL,
    channel     text NOT NULL,
    comment     text NOT NULL,
    at          bigint NOT NULL,
    UNIQUE (request_id, reviewer_id)
);

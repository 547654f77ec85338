-- Break-glass: an approval given alone under a policy `break_glass` entry is flagged, and opens a post-hoc
-- review that two other people must sign off.
ALTER TABLE approvals ADD COLUMN break_glass INTEGER NOT NULL DEFAULT 0 CHECK (break_glass IN (0, 1));

CREATE TABLE break_glass_reviews (
    request_id    TEXT PRIMARY KEY REFERENCES requests (id),
    entry_id      TEXT NOT NULL,
    used_by       TEXT NOT NULL,
    justification TEXT NOT NULL,
    opened_at     INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    closed_at     INTEGER
) STRICT;
CREATE INDEX break_glass_open ON break_glass_reviews (closed_at, due_at);

CREATE TABLE break_glass_signoffs (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES break_glass_reviews (request_id),
    reviewer_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    comment     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    UNIQUE (request_id, reviewer_id)
) STRICT

-- The audit log as an RFC 9162 Merkle tree with signed checkpoints, as in the SQLite store.
-- `audit.leaf_hash` holds the level-0 nodes; `audit_nodes` every complete subtree above them, written
-- when a checkpoint is signed; `audit_log` names the log (its origin) and how far its nodes reach.
CREATE TABLE audit_log (
    id        integer PRIMARY KEY CHECK (id = 1),
    origin    text NOT NULL,
    tree_size bigint NOT NULL
);
-- 64 random bits, like SQLite's randomblob(8): a name no other log has.
INSERT INTO audit_log (id, origin, tree_size) VALUES (1, 'interlock/' || substr(md5(gen_random_uuid()::text), 1, 16), 0);

CREATE TABLE audit_nodes (
    level integer NOT NULL CHECK (level > 0),
    idx   bigint NOT NULL,
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE audit_checkpoints (
    size      bigint PRIMARY KEY,
    root      bytea NOT NULL,
    note      text NOT NULL,
    signed_at bigint NOT NULL
);

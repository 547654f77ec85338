-- The audit log becomes an RFC 9162 Merkle tree with signed checkpoints (the hash chain goes).
-- `audit.leaf_hash` holds the level-0 nodes; `audit_nodes` every complete subtree above them, written
-- when a checkpoint is signed; `audit_log` names the log (its origin) and how far its nodes reach.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    origin    TEXT NOT NULL,
    tree_size INTEGER NOT NULL
) STRICT;
INSERT INTO audit_log (id, origin, tree_size) VALUES (1, 'interlock/' || lower(hex(randomblob(8))), 0);

CREATE TABLE audit_nodes (
    level INTEGER NOT NULL CHECK (level > 0),
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_checkpoints (
    size      INTEGER PRIMARY KEY,
    root      BLOB NOT NULL,
    note      TEXT NOT NULL,
    signed_at INTEGER NOT NULL
) STRICT;

ALTER TABLE audit DROP COLUMN chain_hash

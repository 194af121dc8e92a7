-- The audit log: one record per security-relevant action, written in the transaction of the
-- change it records. Records name users and workspaces without foreign keys, so that they
-- outlive what they name. A record is chained (chain_seq, prev_hash, hash) right after it
-- commits, by whichever server process gets to it first, in the order of audit_chain's lock.
CREATE TABLE audit_events (
    id             BLOB PRIMARY KEY,
    created        TEXT NOT NULL,
    actor_id       BLOB,
    actor_name     TEXT NOT NULL,
    actor_kind     TEXT NOT NULL,
    api_key_id     BLOB,
    workspace_id   BLOB,
    action         TEXT NOT NULL,
    target_type    TEXT,
    target_id      TEXT,
    target_name    TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'error')),
    status         BIGINT,
    client_address TEXT,
    request_id     TEXT,
    details        TEXT NOT NULL,
    chain_seq      BIGINT UNIQUE,
    prev_hash      TEXT,
    hash           TEXT
);
CREATE INDEX audit_events_unchained ON audit_events (created, id) WHERE chain_seq IS NULL;
CREATE INDEX audit_events_created ON audit_events (created);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, created);

-- The chain's head (the last chained record) and its anchor (the last record purged, whose hash
-- the first remaining record carries as prev_hash).
CREATE TABLE audit_chain (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq    BIGINT NOT NULL,
    last_hash   TEXT NOT NULL,
    anchor_seq  BIGINT NOT NULL,
    anchor_hash TEXT NOT NULL
);
INSERT INTO audit_chain (id, last_seq, last_hash, anchor_seq, anchor_hash) VALUES
    (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
     0, '0000000000000000000000000000000000000000000000000000000000000000');

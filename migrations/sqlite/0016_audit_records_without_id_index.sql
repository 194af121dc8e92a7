-- A record's id is a time-ordered UUID made where the action happened, and nothing on SQLite
-- looks a record up by it: lists go by time, workspace or place in the chain. Its unique index
-- was one more tree written on every audited commit, so the records table is rebuilt without it
-- (SQLite cannot drop a column's constraint in place).
CREATE TABLE audit_records (
    chain_seq      INTEGER PRIMARY KEY,
    id             BLOB NOT NULL,
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
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
INSERT INTO audit_records SELECT * FROM audit_events ORDER BY chain_seq;
DROP TABLE audit_events;
ALTER TABLE audit_records RENAME TO audit_events;
CREATE INDEX audit_events_created ON audit_events (created);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, created);

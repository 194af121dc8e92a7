-- The audit log becomes append-only: a record is never rewritten once written. Its place in the
-- chain moves to audit_links. The server's single writer chains records as it commits them;
-- records written inside a longer transaction are queued in audit_unchained and chained right
-- after it commits. SQLite cannot drop a UNIQUE column, so audit_events is rebuilt without
-- its chain columns, and keyed by its id alone (WITHOUT ROWID): ids are UUIDv7, so records go
-- at the end of that one tree, rather than of a row tree and of an index on id.
CREATE TABLE audit_links (
    chain_seq INTEGER PRIMARY KEY,
    event_id  BLOB NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE audit_unchained (
    created TEXT NOT NULL,
    id      BLOB NOT NULL,
    PRIMARY KEY (created, id)
) WITHOUT ROWID;
INSERT INTO audit_links (chain_seq, event_id, prev_hash, hash)
    SELECT chain_seq, id, prev_hash, hash FROM audit_events WHERE chain_seq IS NOT NULL;
INSERT INTO audit_unchained (created, id)
    SELECT created, id FROM audit_events WHERE chain_seq IS NULL;

CREATE TABLE audit_events_appended (
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
    details        TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO audit_events_appended
    SELECT id, created, actor_id, actor_name, actor_kind, api_key_id, workspace_id, action,
           target_type, target_id, target_name, outcome, status, client_address, request_id,
           details
    FROM audit_events ORDER BY created, id;
DROP TABLE audit_events;
ALTER TABLE audit_events_appended RENAME TO audit_events;
CREATE INDEX audit_events_created ON audit_events (created);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, created);

-- The database keeps the chain whole: a link must follow the head (the next position, after
-- the head's hash), and moving the head is the link's own doing. The writer may then link
-- records after the head it last saw without reading it first: should another process have
-- moved it meanwhile, the link is refused and the writer reads the head and tries again.
CREATE TRIGGER audit_links_follow_the_head BEFORE INSERT ON audit_links
BEGIN
    SELECT RAISE(ABORT, 'an audit link must follow the head of the chain')
    WHERE NOT EXISTS (
        SELECT 1 FROM audit_chain
        WHERE id = 1 AND last_seq + 1 = NEW.chain_seq AND last_hash = NEW.prev_hash
    );
END;
CREATE TRIGGER audit_links_move_the_head AFTER INSERT ON audit_links
BEGIN
    UPDATE audit_chain SET last_seq = NEW.chain_seq, last_hash = NEW.hash WHERE id = 1;
END;

-- On SQLite every audit record is linked into the chain by the transaction that writes it: the
-- one writer holds the database's write lock through that transaction anyway, so nothing waits
-- for the chain. A record's link (chain_seq, prev_hash, hash) is known as it is inserted, and
-- becomes part of its row, which is still never rewritten. The row is keyed by its place in the
-- chain, so that each record goes at the end of one tree; a link table, its event_id index and
-- a head moved per link by a trigger were three more writes per record.
CREATE TABLE audit_records (
    chain_seq      INTEGER PRIMARY KEY,
    id             BLOB NOT NULL UNIQUE,
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
INSERT INTO audit_records
    SELECT audit_links.chain_seq, id, created, actor_id, actor_name, actor_kind, api_key_id,
           workspace_id, action, target_type, target_id, target_name, outcome, status,
           client_address, request_id, details, audit_links.prev_hash, audit_links.hash
    FROM audit_links JOIN audit_events ON audit_events.id = audit_links.event_id
    ORDER BY audit_links.chain_seq;

-- Records that a stopped process left waiting for the chainer: the server links them after
-- the others when it starts (SQL cannot hash them), then drops this table.
CREATE TABLE audit_records_to_link AS
    SELECT * FROM audit_events
    WHERE id NOT IN (SELECT event_id FROM audit_links);

DROP TRIGGER audit_links_follow_the_head;
DROP TRIGGER audit_links_move_the_head;
DROP TABLE audit_links;
DROP TABLE audit_unchained;
DROP TABLE audit_events;
ALTER TABLE audit_records RENAME TO audit_events;
CREATE INDEX audit_events_created ON audit_events (created);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, created);

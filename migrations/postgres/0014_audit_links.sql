-- The audit log becomes append-only: a record is never rewritten once written. Its place in the
-- chain moves to audit_links, written when it is chained, and records waiting to be chained are
-- queued in audit_unchained, written in the transaction of the record and removed when it is
-- chained. Rewriting each record to chain it cost a second version of a wide row and of its
-- five index entries, then the vacuum of the first.
CREATE TABLE audit_links (
    chain_seq BIGINT PRIMARY KEY,
    event_id  UUID NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE audit_unchained (
    created TIMESTAMPTZ NOT NULL,
    id      UUID NOT NULL,
    PRIMARY KEY (created, id)
);
INSERT INTO audit_links (chain_seq, event_id, prev_hash, hash)
    SELECT chain_seq, id, prev_hash, hash FROM audit_events WHERE chain_seq IS NOT NULL;
INSERT INTO audit_unchained (created, id)
    SELECT created, id FROM audit_events WHERE chain_seq IS NULL;
DROP INDEX audit_events_unchained;
ALTER TABLE audit_events DROP COLUMN chain_seq, DROP COLUMN prev_hash, DROP COLUMN hash;

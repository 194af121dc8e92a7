-- Version counters for what a connector list shows: its workspace's connectors (counted under
-- the workspace's id) and their owners' accounts (counted under the nil id, since an owner
-- appears in every workspace they own connectors in). Triggers count every change, whatever
-- code makes it, so that the server can keep a rendered page for as long as the counters it
-- was read under are unchanged. SQLite has one writer at a time, so one row per scope is
-- enough (`shard` is always 0; PostgreSQL spreads writers over 16).
CREATE TABLE connector_list_versions (
    scope_id BLOB NOT NULL,
    shard    INTEGER NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (scope_id, shard)
);

CREATE TRIGGER service_connectors_inserted AFTER INSERT ON service_connectors
BEGIN
    INSERT INTO connector_list_versions (scope_id, shard, version) VALUES (NEW.workspace_id, 0, 1)
    ON CONFLICT (scope_id, shard) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER service_connectors_updated AFTER UPDATE ON service_connectors
BEGIN
    INSERT INTO connector_list_versions (scope_id, shard, version) VALUES (NEW.workspace_id, 0, 1)
    ON CONFLICT (scope_id, shard) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER service_connectors_deleted AFTER DELETE ON service_connectors
BEGIN
    INSERT INTO connector_list_versions (scope_id, shard, version) VALUES (OLD.workspace_id, 0, 1)
    ON CONFLICT (scope_id, shard) DO UPDATE SET version = version + 1;
END;

-- The columns a connector's owner is rendered with.
CREATE TRIGGER users_updated_as_owners
    AFTER UPDATE OF name, is_admin, is_service_account, created, updated ON users
BEGIN
    INSERT INTO connector_list_versions (scope_id, shard, version)
    VALUES (zeroblob(16), 0, 1)
    ON CONFLICT (scope_id, shard) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER users_deleted_as_owners AFTER DELETE ON users
BEGIN
    INSERT INTO connector_list_versions (scope_id, shard, version)
    VALUES (zeroblob(16), 0, 1)
    ON CONFLICT (scope_id, shard) DO UPDATE SET version = version + 1;
END;

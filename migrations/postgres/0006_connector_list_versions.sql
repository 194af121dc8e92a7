-- Version counters for what a connector list shows: its workspace's connectors (counted under
-- the workspace's id) and their owners' accounts (counted under the nil id, since an owner
-- appears in every workspace they own connectors in). Triggers count every change, whatever
-- code makes it, so that a server can keep a rendered page for as long as the counters it was
-- read under are unchanged, and every server process sharing the database sees the same
-- counters. A transaction counts on one of 16 rows per scope, chosen by its transaction id, so
-- that concurrent writers rarely wait for each other's row lock and one transaction never
-- locks two rows of a scope.
CREATE TABLE connector_list_versions (
    scope_id UUID NOT NULL,
    shard    SMALLINT NOT NULL,
    version  BIGINT NOT NULL,
    PRIMARY KEY (scope_id, shard)
);

-- Statement-level triggers: a statement that changes many connectors (a workspace deleted with
-- all of them, say) raises each version once. A row-level trigger would raise the same row once
-- per connector, and each update of a row already updated in the same transaction walks all its
-- earlier versions: deleting 20,000 rows took 2.9 s with one and 28 ms with these.
CREATE FUNCTION connectors_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO connector_list_versions (scope_id, shard, version)
    SELECT DISTINCT workspace_id, (pg_current_xact_id()::text::bigint % 16)::smallint, 1
    FROM changed
    ON CONFLICT (scope_id, shard)
    DO UPDATE SET version = connector_list_versions.version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER service_connectors_inserted AFTER INSERT ON service_connectors
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION connectors_changed();
CREATE TRIGGER service_connectors_updated AFTER UPDATE ON service_connectors
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION connectors_changed();
CREATE TRIGGER service_connectors_deleted AFTER DELETE ON service_connectors
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION connectors_changed();

CREATE FUNCTION connector_owners_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO connector_list_versions (scope_id, shard, version)
    VALUES ('00000000-0000-0000-0000-000000000000',
            (pg_current_xact_id()::text::bigint % 16)::smallint, 1)
    ON CONFLICT (scope_id, shard)
    DO UPDATE SET version = connector_list_versions.version + 1;
    RETURN NULL;
END
$$;

-- The columns a connector's owner is rendered with.
CREATE TRIGGER users_changed_as_owners
    AFTER UPDATE OF name, is_admin, is_service_account, created, updated OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION connector_owners_changed();

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

CREATE FUNCTION count_connector_list_change(scope UUID) RETURNS void LANGUAGE sql AS $$
    INSERT INTO connector_list_versions (scope_id, shard, version)
    VALUES (scope, (pg_current_xact_id()::text::bigint % 16)::smallint, 1)
    ON CONFLICT (scope_id, shard)
    DO UPDATE SET version = connector_list_versions.version + 1
$$;

CREATE FUNCTION connector_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM count_connector_list_change(OLD.workspace_id);
    ELSE
        PERFORM count_connector_list_change(NEW.workspace_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER service_connectors_changed
    AFTER INSERT OR UPDATE OR DELETE ON service_connectors
    FOR EACH ROW EXECUTE FUNCTION connector_changed();

CREATE FUNCTION connector_owner_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count_connector_list_change('00000000-0000-0000-0000-000000000000');
    RETURN NULL;
END
$$;

-- The columns a connector's owner is rendered with.
CREATE TRIGGER users_changed_as_owners
    AFTER UPDATE OF name, is_admin, is_service_account, created, updated OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION connector_owner_changed();

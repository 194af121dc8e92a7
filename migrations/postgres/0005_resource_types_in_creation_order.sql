-- Each resource-type row carries its connector's creation time, as label rows do, so that a
-- resource-type filter reads a page in creation order straight from the index below. Before,
-- it walked the connectors in order and probed each one, which for a rare type meant every
-- connector of the workspace.
ALTER TABLE service_connector_resource_types ADD COLUMN created TIMESTAMPTZ;
UPDATE service_connector_resource_types rt
    SET created = c.created FROM service_connectors c WHERE c.id = rt.connector_id;
ALTER TABLE service_connector_resource_types ALTER COLUMN created SET NOT NULL;
DROP INDEX service_connector_resource_types_lookup;
CREATE INDEX service_connector_resource_types_lookup
    ON service_connector_resource_types (workspace_id, resource_type, created, connector_id);

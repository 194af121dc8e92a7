-- Service connectors. Secret configuration values live in an internal secret (`secret_id`);
-- the row holds only non-secret configuration.
CREATE TABLE service_connectors (
    id                     UUID PRIMARY KEY,
    workspace_id           UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id                UUID REFERENCES users (id) ON DELETE SET NULL,
    name                   TEXT NOT NULL,
    description            TEXT NOT NULL DEFAULT '',
    connector_type         TEXT NOT NULL,
    auth_method            TEXT NOT NULL,
    -- JSON array, for rendering; `service_connector_resource_types` is for filtering.
    resource_types         TEXT NOT NULL,
    resource_id            TEXT,
    supports_instances     BOOLEAN NOT NULL,
    expires_at             TIMESTAMPTZ,
    expires_skew_tolerance BIGINT,
    expiration_seconds     BIGINT,
    -- JSON objects; labels are also in `service_connector_labels` for filtering.
    configuration          TEXT NOT NULL,
    labels                 TEXT NOT NULL,
    secret_id              UUID REFERENCES secrets (id) ON DELETE SET NULL,
    shared                 BOOLEAN NOT NULL,
    created                TIMESTAMPTZ NOT NULL,
    updated                TIMESTAMPTZ NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE INDEX service_connectors_by_created ON service_connectors (workspace_id, created, id);
CREATE INDEX service_connectors_by_owner ON service_connectors (workspace_id, user_id, created);

CREATE TABLE service_connector_labels (
    connector_id UUID NOT NULL REFERENCES service_connectors (id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL,
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    -- The connector's creation time, so that a label filter reads a page in creation order
    -- straight from the index below.
    created      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connector_id, key)
);
CREATE INDEX service_connector_labels_lookup
    ON service_connector_labels (workspace_id, key, value, created, connector_id);

CREATE TABLE service_connector_resource_types (
    connector_id  UUID NOT NULL REFERENCES service_connectors (id) ON DELETE CASCADE,
    workspace_id  UUID NOT NULL,
    resource_type TEXT NOT NULL,
    PRIMARY KEY (connector_id, resource_type)
);
CREATE INDEX service_connector_resource_types_lookup
    ON service_connector_resource_types (workspace_id, resource_type, connector_id);

-- How many connectors a workspace holds, so that list totals cost a few index lookups instead
-- of a scan: shared connectors under the nil owner, private ones under their owner; per facet:
-- '' (all), 'type:<resource type>', 'label:<key>' and 'label:<key>=<value>'. Each change adds
-- +1 or -1 to one of 16 shards, so that concurrent writers rarely wait on the same row.
CREATE TABLE service_connector_counts (
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id     UUID NOT NULL,
    facet        TEXT NOT NULL,
    shard        SMALLINT NOT NULL,
    total        BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, facet, owner_id, shard)
);

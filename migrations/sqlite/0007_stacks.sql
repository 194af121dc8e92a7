-- Stack components: a flavor's configuration (a JSON object that holds no secret value:
-- sensitive attributes hold references to secrets), optionally linked to a service connector
-- and one of its resources. A connector that components use is not deleted: the delete locks
-- it and counts them in its transaction. The ON DELETE actions here only serve deletes that
-- take everything at once (a workspace's), which a check per row would refuse half-way.
CREATE TABLE stack_components (
    id                    BLOB PRIMARY KEY,
    workspace_id          BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id               BLOB REFERENCES users (id) ON DELETE SET NULL,
    name                  TEXT NOT NULL,
    component_type        TEXT NOT NULL,
    flavor                TEXT NOT NULL,
    -- JSON objects.
    configuration         TEXT NOT NULL,
    environment           TEXT NOT NULL,
    labels                TEXT,
    connector_id          BLOB REFERENCES service_connectors (id) ON DELETE SET NULL,
    connector_resource_id TEXT,
    -- The workspace's default orchestrator and artifact store, which cannot be changed.
    is_default            BOOLEAN NOT NULL,
    created               TEXT NOT NULL,
    updated               TEXT NOT NULL,
    UNIQUE (workspace_id, component_type, name)
);
CREATE INDEX stack_components_by_created ON stack_components (workspace_id, created, id);
CREATE INDEX stack_components_by_type
    ON stack_components (workspace_id, component_type, created, id);
-- A connector's components in creation order; the workspace is there for lists to count them
-- from the index alone.
CREATE INDEX stack_components_by_connector
    ON stack_components (connector_id, workspace_id, created, id);
CREATE INDEX stack_components_by_owner ON stack_components (user_id);

CREATE TABLE stacks (
    id              BLOB PRIMARY KEY,
    workspace_id    BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id         BLOB REFERENCES users (id) ON DELETE SET NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    stack_spec_path TEXT,
    -- JSON objects.
    environment     TEXT NOT NULL,
    labels          TEXT,
    -- The workspace's default stack, which cannot be changed or deleted.
    is_default      BOOLEAN NOT NULL,
    created         TEXT NOT NULL,
    updated         TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE INDEX stacks_by_created ON stacks (workspace_id, created, id);
CREATE INDEX stacks_by_owner ON stacks (user_id);

-- The components a stack is made of, in order within each type (the first is the type's
-- default). A component that is part of a stack is not deleted: the delete locks it and
-- counts its stacks in its transaction.
CREATE TABLE stack_members (
    stack_id     BLOB NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    component_id BLOB NOT NULL REFERENCES stack_components (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    PRIMARY KEY (stack_id, component_id)
);
CREATE INDEX stack_members_by_component ON stack_members (component_id);

-- Public secrets that a component or a stack sets as environment variables where it runs.
CREATE TABLE stack_component_secrets (
    owner_id  BLOB NOT NULL REFERENCES stack_components (id) ON DELETE CASCADE,
    secret_id BLOB NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    PRIMARY KEY (owner_id, secret_id)
);
CREATE INDEX stack_component_secrets_by_secret ON stack_component_secrets (secret_id);

CREATE TABLE stack_secrets (
    owner_id  BLOB NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    secret_id BLOB NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    PRIMARY KEY (owner_id, secret_id)
);
CREATE INDEX stack_secrets_by_secret ON stack_secrets (secret_id);

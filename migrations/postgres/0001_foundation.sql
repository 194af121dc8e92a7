-- Tenants (workspaces), users, memberships and service-account API keys.
CREATE TABLE workspaces (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created      TIMESTAMPTZ NOT NULL,
    updated      TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id                   UUID PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    full_name            TEXT NOT NULL DEFAULT '',
    email                TEXT,
    password_hash        TEXT,
    description          TEXT NOT NULL DEFAULT '',
    is_admin             BOOLEAN NOT NULL,
    is_service_account   BOOLEAN NOT NULL,
    active               BOOLEAN NOT NULL,
    default_workspace_id UUID REFERENCES workspaces (id) ON DELETE SET NULL,
    created              TIMESTAMPTZ NOT NULL,
    updated              TIMESTAMPTZ NOT NULL
);

CREATE TABLE workspace_members (
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_by_user ON workspace_members (user_id);

CREATE TABLE api_keys (
    id                 UUID PRIMARY KEY,
    service_account_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    key_hash           TEXT NOT NULL,
    active             BOOLEAN NOT NULL,
    last_login         TIMESTAMPTZ,
    created            TIMESTAMPTZ NOT NULL,
    updated            TIMESTAMPTZ NOT NULL,
    UNIQUE (service_account_id, name)
);

-- Plain (non-secret) server-wide settings, such as the server's deployment id.
CREATE TABLE server_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

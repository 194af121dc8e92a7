-- Tenants (workspaces), users, memberships and service-account API keys.
CREATE TABLE workspaces (
    id           BLOB PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created      TEXT NOT NULL,
    updated      TEXT NOT NULL
);

CREATE TABLE users (
    id                   BLOB PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    full_name            TEXT NOT NULL DEFAULT '',
    email                TEXT,
    password_hash        TEXT,
    description          TEXT NOT NULL DEFAULT '',
    is_admin             BOOLEAN NOT NULL,
    is_service_account   BOOLEAN NOT NULL,
    active               BOOLEAN NOT NULL,
    default_workspace_id BLOB REFERENCES workspaces (id) ON DELETE SET NULL,
    created              TEXT NOT NULL,
    updated              TEXT NOT NULL
);

CREATE TABLE workspace_members (
    workspace_id BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created      TEXT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_by_user ON workspace_members (user_id);

CREATE TABLE api_keys (
    id                 BLOB PRIMARY KEY,
    service_account_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    key_hash           TEXT NOT NULL,
    active             BOOLEAN NOT NULL,
    last_login         TEXT,
    created            TEXT NOT NULL,
    updated            TEXT NOT NULL,
    UNIQUE (service_account_id, name)
);

-- Plain (non-secret) server-wide settings, such as the server's deployment id.
CREATE TABLE server_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Data keys, wrapped by the master key. Exactly one is active: it encrypts new values; the
-- others only decrypt what they already protect.
CREATE TABLE data_keys (
    id            UUID PRIMARY KEY,
    wrapped       BYTEA NOT NULL,
    master_key_id TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    -- Encryptions reserved under this key by all processes (an upper bound of those made).
    encryptions   BIGINT NOT NULL DEFAULT 0,
    created       TIMESTAMPTZ NOT NULL,
    retired       TIMESTAMPTZ
);
CREATE UNIQUE INDEX data_keys_one_active ON data_keys (active) WHERE active;

-- Server-wide secrets such as the token signing key.
CREATE TABLE server_secrets (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    key_id     UUID NOT NULL REFERENCES data_keys (id),
    ciphertext BYTEA NOT NULL,
    revision   BIGINT NOT NULL,
    updated    TIMESTAMPTZ NOT NULL
);
CREATE INDEX server_secrets_by_key ON server_secrets (key_id);

-- User secrets, and internal ones that back service connectors (never listed as secrets).
-- Values are one encrypted JSON object per secret.
CREATE TABLE secrets (
    id           UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      UUID REFERENCES users (id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    private      BOOLEAN NOT NULL,
    internal     BOOLEAN NOT NULL,
    key_id       UUID NOT NULL REFERENCES data_keys (id),
    ciphertext   BYTEA NOT NULL,
    revision     BIGINT NOT NULL,
    created      TIMESTAMPTZ NOT NULL,
    updated      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX secrets_public_name ON secrets (workspace_id, name)
    WHERE NOT private AND NOT internal;
CREATE UNIQUE INDEX secrets_private_name ON secrets (workspace_id, user_id, name)
    WHERE private AND NOT internal;
CREATE INDEX secrets_by_workspace ON secrets (workspace_id, created);
CREATE INDEX secrets_by_key ON secrets (key_id);

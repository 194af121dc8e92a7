-- OAuth 2.0 device authorization grants (RFC 8628), as `zenml login` uses them. The device
-- code is a bearer secret: only its SHA-256 is stored. A grant is deleted once exchanged.
CREATE TABLE device_authorizations (
    id               UUID PRIMARY KEY,
    client_id        UUID NOT NULL,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code        TEXT NOT NULL,
    -- Set when a logged-in user approves the device.
    user_id          UUID REFERENCES users (id) ON DELETE CASCADE,
    expires_at       TIMESTAMPTZ NOT NULL,
    created          TIMESTAMPTZ NOT NULL
);

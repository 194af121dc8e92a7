-- OAuth 2.0 device authorization grants (RFC 8628), as `zenml login` uses them. The device
-- code is a bearer secret: only its SHA-256 is stored. A grant is deleted once exchanged.
CREATE TABLE device_authorizations (
    id               BLOB PRIMARY KEY,
    client_id        BLOB NOT NULL,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code        TEXT NOT NULL,
    -- Set when a logged-in user approves the device.
    user_id          BLOB REFERENCES users (id) ON DELETE CASCADE,
    expires_at       TEXT NOT NULL,
    created          TEXT NOT NULL
);

-- Failed logins, shared by every server process on the database so that replicas together allow
-- the configured number: one row per failure under each count's key (`user:…`, `addr:…`,
-- `pair:…`). An attempt writes its rows before its credentials are checked, as a pending
-- failure, and deletes them again when it succeeds. Rows older than the window are swept.
CREATE TABLE login_failures (
    limit_key TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    attempt   UUID NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (limit_key, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- Wrong user codes tried against a device login; after five the login is dropped, so that a
-- user code cannot be guessed.
ALTER TABLE device_authorizations ADD COLUMN failed_verifications INTEGER NOT NULL DEFAULT 0;

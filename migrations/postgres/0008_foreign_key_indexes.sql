-- Every foreign key that a delete follows gets an index that starts with its column, so that
-- deleting the referenced row (or setting the reference to NULL) finds the referencing rows
-- directly instead of scanning their table: deleting a connector deleted its secret, and
-- every secret delete scanned all connectors for `secret_id`.
CREATE INDEX users_by_default_workspace ON users (default_workspace_id);
CREATE INDEX secrets_by_owner ON secrets (user_id);
CREATE INDEX service_connectors_by_secret ON service_connectors (secret_id);
CREATE INDEX service_connectors_by_user ON service_connectors (user_id);
CREATE INDEX device_authorizations_by_user ON device_authorizations (user_id);

-- The outcome of the last verification of each stored connector, for lists and dashboards: when
-- it ran, the engine's error (NULL when it succeeded) and how many resources it reached per
-- resource type (a JSON object). A verification is no edit, so `updated` stays as it is.
ALTER TABLE service_connectors ADD COLUMN last_verified_at TEXT;
ALTER TABLE service_connectors ADD COLUMN last_verification_error TEXT;
ALTER TABLE service_connectors ADD COLUMN last_verified_resources TEXT;

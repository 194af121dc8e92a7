-- Tokens and dashboard sessions end when their account changes: each carries the generation of
-- its user's sessions it was issued in, and stays valid only while that is still the user's.
-- A password change, a deactivation and a sign-out everywhere move the generation on. A
-- password change keeps the one session that made it, named in `kept_session`.
ALTER TABLE users ADD COLUMN session_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN kept_session BLOB;

-- Users with roles, browser sessions and per-user API tokens.

-- admin: everything; editor: workflows, keys, secrets, runs; viewer: reads. Until now the only
-- user was the bootstrap admin, so every existing user is an admin.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer';
UPDATE users SET role = 'admin';

-- Tokens become per-user API tokens with a name (unique per user) for the CLI. The bootstrap
-- token has no name; it is listed as `admin-token`.
ALTER TABLE tokens ADD COLUMN name TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
CREATE UNIQUE INDEX tokens_by_user_name ON tokens (user_name, name);

-- Browser sessions: the cookie holds a random value, the table only its SHA-256 digest. `csrf`
-- is the token the web UI echoes in X-CSRF-Token on unsafe requests.
CREATE TABLE sessions (
    digest     TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);

-- The executions page filters and counts by time.
CREATE INDEX executions_by_created ON executions (created_at);

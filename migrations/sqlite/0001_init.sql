-- Times are Unix milliseconds (INTEGER) so the same columns work on PostgreSQL as BIGINT.

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Admin tokens: only a SHA-256 digest is kept; the token itself is shown once.
CREATE TABLE tokens (
    digest     TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);

-- API keys: looked up by digest, value kept encrypted so the UI can reveal it.
CREATE TABLE api_keys (
    name         TEXT PRIMARY KEY,
    digest       TEXT NOT NULL UNIQUE,
    value_enc    BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

CREATE TABLE workflows (
    id              TEXT PRIMARY KEY,
    current_version INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- Versions outlive a deleted workflow: its executions still show the document they ran.
CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    document    TEXT NOT NULL, -- canonical JSON of the validated document
    source      TEXT NOT NULL, -- the text as applied, comments and all
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

-- Every webhook delivery, accepted or not. The raw body is kept once, here.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    reason      TEXT,
    key_name    TEXT,
    dedupe_key  TEXT,
    executions  TEXT NOT NULL DEFAULT '[]',
    body        BLOB
);
CREATE INDEX events_by_workflow ON events (workflow_id, received_at);
CREATE INDEX events_by_dedupe ON events (workflow_id, dedupe_key, received_at) WHERE dedupe_key IS NOT NULL;

CREATE TABLE executions (
    id           TEXT PRIMARY KEY,
    workflow_id  TEXT NOT NULL,
    version      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    event_id     TEXT REFERENCES events(id),
    alert_index  INTEGER,
    input        BLOB, -- manual runs; webhook runs read events.body
    error        TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
);
CREATE INDEX executions_by_workflow ON executions (workflow_id, created_at);
CREATE INDEX executions_by_status ON executions (status, created_at);

CREATE TABLE steps (
    execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    step_id      TEXT NOT NULL,
    position     INTEGER NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    input        TEXT,
    output       TEXT,
    error        TEXT,
    started_at   INTEGER,
    finished_at  INTEGER,
    PRIMARY KEY (execution_id, step_id)
);

-- The queue: one row per execution that still has work. A worker leases it; a lease that
-- runs out (crashed worker) makes the row claimable again.
CREATE TABLE jobs (
    execution_id TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
    run_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    claims       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_ready ON jobs (run_at);

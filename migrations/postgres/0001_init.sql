-- Times are Unix milliseconds (BIGINT), as in the SQLite schema.

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Admin tokens: only a SHA-256 digest is kept; the token itself is shown once.
CREATE TABLE tokens (
    digest     TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

-- API keys: looked up by digest, value kept encrypted so the UI can reveal it.
CREATE TABLE api_keys (
    name         TEXT PRIMARY KEY,
    digest       TEXT NOT NULL UNIQUE,
    value_enc    BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE TABLE workflows (
    id              TEXT PRIMARY KEY,
    current_version BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Versions outlive a deleted workflow: its executions still show the document they ran.
CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL,
    version     BIGINT NOT NULL,
    document    TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

-- Every webhook delivery, accepted or not. The raw body is kept once, here.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    status_code BIGINT NOT NULL,
    reason      TEXT,
    key_name    TEXT,
    dedupe_key  TEXT,
    executions  TEXT NOT NULL DEFAULT '[]',
    body        BYTEA
);
CREATE INDEX events_by_workflow ON events (workflow_id, received_at);
CREATE INDEX events_by_dedupe ON events (workflow_id, dedupe_key, received_at) WHERE dedupe_key IS NOT NULL;

CREATE TABLE executions (
    id           TEXT PRIMARY KEY,
    workflow_id  TEXT NOT NULL,
    version      BIGINT NOT NULL,
    status       TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    event_id     TEXT REFERENCES events(id),
    alert_index  BIGINT,
    input        BYTEA,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT
);
CREATE INDEX executions_by_workflow ON executions (workflow_id, created_at);
CREATE INDEX executions_by_status ON executions (status, created_at);

CREATE TABLE steps (
    execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    step_id      TEXT NOT NULL,
    position     BIGINT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    input        TEXT,
    output       TEXT,
    error        TEXT,
    started_at   BIGINT,
    finished_at  BIGINT,
    PRIMARY KEY (execution_id, step_id)
);

-- The queue: claimed with FOR UPDATE SKIP LOCKED and a lease; a lease that runs out (a dead
-- node) makes the row claimable again.
CREATE TABLE jobs (
    execution_id TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
    run_at       BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    claims       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_ready ON jobs (run_at);

-- The workflow language: waits, approvals, cancel, replay, alert memory, locks, schedules, secrets.

-- Which alert a run is about: the fingerprint under `split: per_alert`, else the groupKey. A
-- resolved notification for it sets `resolved_at` and wakes the run's waits.
ALTER TABLE executions ADD COLUMN alert_key TEXT;
ALTER TABLE executions ADD COLUMN resolved_at INTEGER;
-- Set under `concurrency: per_alert` (the alert_key): runs with one key run one at a time, in order.
ALTER TABLE executions ADD COLUMN lock_key TEXT;
ALTER TABLE executions ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN replay_of TEXT;
CREATE INDEX executions_by_alert ON executions (workflow_id, alert_key) WHERE alert_key IS NOT NULL;
CREATE INDEX executions_by_lock ON executions (workflow_id, lock_key) WHERE lock_key IS NOT NULL;

-- Every attempt of a step, with its error: [{attempt, started_at, finished_at, error}].
ALTER TABLE steps ADD COLUMN attempt_log TEXT;
-- A foreach step's items: [{index, status, attempts, output, error}].
ALTER TABLE steps ADD COLUMN items TEXT;

CREATE TABLE approvals (
    execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    step_id      TEXT NOT NULL,
    decision     TEXT NOT NULL, -- approved | denied
    decided_by   TEXT NOT NULL,
    decided_at   INTEGER NOT NULL,
    comment      TEXT,
    PRIMARY KEY (execution_id, step_id)
);

-- Alert memory: what runs for one alert of one workflow leave for the next (a ticket key).
CREATE TABLE memory (
    workflow_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL, -- JSON
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, fingerprint, name)
);

CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value_enc  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Schedule triggers: the next fire time of each, advanced with a compare-and-set so that one
-- node fires each time.
CREATE TABLE schedules (
    workflow_id  TEXT PRIMARY KEY,
    next_fire_at INTEGER NOT NULL
);

-- What the database was written with: a value sealed with the master key, so that a node with
-- another key refuses to start instead of writing what the others cannot read.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- Every b-tree a delivery writes to costs each commit one more page written to the WAL and
-- synced, and the writer one more insert. Two fewer here (11 to 9 per delivery): in eight
-- alternating pairs of ingest runs, server CPU per delivery had a median of 47 us against 50,
-- and this schema was ahead in five (bench/ANALYSIS.md, round 6).

-- The queue keyed by its execution, stored in that key's b-tree (no rowid table beside it).
CREATE TABLE jobs_by_execution (
    execution_id TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
    run_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    claims       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO jobs_by_execution (execution_id, run_at, lease_owner, lease_until, claims)
  SELECT execution_id, run_at, lease_owner, lease_until, claims FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_by_execution RENAME TO jobs;
CREATE INDEX jobs_ready ON jobs (run_at);

-- One index by time that also holds the status, for the executions page's list and its
-- counts per status, instead of one by time and one by status.
DROP INDEX executions_by_status;
DROP INDEX executions_by_created;
CREATE INDEX executions_by_created ON executions (created_at, status);

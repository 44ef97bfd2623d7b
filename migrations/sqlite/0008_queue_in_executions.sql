-- The queue moves into the executions table: an unfinished run is queued while `run_at` is
-- set, and a partial index over those rows replaces the jobs table. A delivery then writes
-- one statement and one b-tree fewer (the jobs row and its key's b-tree, against one entry in
-- the partial index), and a run's end is one UPDATE instead of an UPDATE and a DELETE.
-- bench/ANALYSIS.md (round 15) has the measurements.
ALTER TABLE executions ADD COLUMN run_at INTEGER;
ALTER TABLE executions ADD COLUMN lease_owner TEXT;
ALTER TABLE executions ADD COLUMN lease_until INTEGER;
ALTER TABLE executions ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
UPDATE executions SET (run_at, lease_owner, lease_until, claims) =
  (SELECT run_at, lease_owner, lease_until, claims FROM jobs WHERE jobs.execution_id = executions.id)
 WHERE id IN (SELECT execution_id FROM jobs);
DROP TABLE jobs;
-- Only queued runs, so that its size follows the backlog, not the history kept.
CREATE INDEX executions_queue ON executions (run_at) WHERE run_at IS NOT NULL;

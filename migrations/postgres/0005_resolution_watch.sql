-- Only a run that may wait `until_resolved` needs finding by its alert when a resolved
-- notification arrives. Indexing every run's alert key cost each delivery one more b-tree
-- insert on the commit path: ingest 12,891-13,528/s against 12,005-12,627/s (bench/ANALYSIS.md).
ALTER TABLE executions ADD COLUMN watches_resolution INTEGER NOT NULL DEFAULT 0;
-- Unfinished runs from before: their workflows were not inspected, so every one still
-- watches.
UPDATE executions SET watches_resolution = 1
 WHERE alert_key IS NOT NULL AND status IN ('pending', 'running', 'waiting');
DROP INDEX executions_by_alert;
-- Unfinished ones only, as a resolve looks for: a flapping alert's finished runs would
-- otherwise be walked at every resolve, for as long as they are kept.
CREATE INDEX executions_by_alert ON executions (workflow_id, alert_key)
 WHERE watches_resolution = 1 AND status IN ('pending', 'running', 'waiting');

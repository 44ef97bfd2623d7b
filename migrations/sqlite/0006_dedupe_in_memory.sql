-- The writer finds duplicates in memory (src/store/sqlite/recent.rs), loading a workflow's
-- window from events_by_workflow. An index on the key, a hash, cost every delivery a random
-- page in its commit: ingest 18,424-18,588/s without it against 12,448-13,060/s with it.
DROP INDEX events_by_dedupe;

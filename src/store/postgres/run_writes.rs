//! The steps and ends of the runs in progress, taken together (see `batch`): one statement
//! saves every step in the batch, one ends its runs, and one COMMIT makes them durable. Each
//! had been a transaction of its own, three for a run of a `transform` and an `http.request`.

use super::batch::BatchWrite;
use super::*;
use std::collections::hash_map::{Entry, HashMap};

pub(super) enum RunWrite {
    /// A step given twice keeps its later state.
    Steps {
        execution_id: String,
        steps: Vec<StepRecord>,
    },
    /// The run's end, and its job gone.
    End {
        execution_id: String,
        status: String,
        error: Option<String>,
        now: i64,
    },
}

pub(super) struct RunWrites {
    pub(super) announcer: queue::Announcer,
}

#[async_trait]
impl BatchWrite for RunWrites {
    type Item = RunWrite;
    type Out = ();

    async fn write(
        &self,
        pool: &PgPool,
        writes: &[&RunWrite],
    ) -> std::result::Result<Vec<()>, sqlx::Error> {
        let mut steps: Vec<(&str, &StepRecord)> = Vec::new();
        let mut ends: Vec<(&str, &str, Option<&str>, i64)> = Vec::new();
        for write in writes {
            match write {
                RunWrite::Steps {
                    execution_id,
                    steps: saved,
                } => steps.extend(saved.iter().map(|s| (execution_id.as_str(), s))),
                RunWrite::End {
                    execution_id,
                    status,
                    error,
                    now,
                } => ends.push((execution_id, status, error.as_deref(), *now)),
            }
        }
        let unlocked = match (steps.is_empty(), ends.is_empty()) {
            // One statement commits on its own: no BEGIN and COMMIT round trips.
            (false, true) => {
                upsert_steps(pool, &steps).await?;
                false
            }
            (true, false) => end_runs(pool, &ends).await?,
            _ => {
                let mut tx = pool.begin().await?;
                upsert_steps(&mut *tx, &steps).await?;
                let unlocked = end_runs(&mut *tx, &ends).await?;
                tx.commit().await?;
                unlocked
            }
        };
        if unlocked {
            // A run waiting on an ended one's lock can start now, on any node.
            self.announcer.announce();
        }
        Ok(vec![(); writes.len()])
    }
}

/// Saves steps of any runs in one statement; a step given twice keeps its later state (one
/// INSERT ... ON CONFLICT cannot touch a row twice).
pub(super) async fn upsert_steps<'c>(
    c: impl sqlx::PgExecutor<'c>,
    steps: &[(&str, &StepRecord)],
) -> std::result::Result<(), sqlx::Error> {
    // A batch holds the steps of many runs: repeats are found by key, not by scanning.
    let mut at: HashMap<(&str, &str), usize> = HashMap::with_capacity(steps.len());
    let mut last: Vec<(&str, &StepRecord)> = Vec::with_capacity(steps.len());
    for &(execution, s) in steps {
        match at.entry((execution, s.step_id.as_str())) {
            Entry::Occupied(i) => last[*i.get()].1 = s,
            Entry::Vacant(v) => {
                v.insert(last.len());
                last.push((execution, s));
            }
        }
    }
    let text =
        |f: fn(&StepRecord) -> Option<&str>| last.iter().map(|(_, s)| f(s)).collect::<Vec<_>>();
    let int =
        |f: fn(&StepRecord) -> Option<i64>| last.iter().map(|(_, s)| f(s)).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO steps (execution_id, step_id, position, status, attempts, input, output, error, started_at, finished_at, attempt_log, items)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[])
         ON CONFLICT (execution_id, step_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
           input = excluded.input, output = excluded.output, error = excluded.error,
           started_at = excluded.started_at, finished_at = excluded.finished_at,
           attempt_log = excluded.attempt_log, items = excluded.items",
    )
    .bind(last.iter().map(|(x, _)| *x).collect::<Vec<_>>())
    .bind(text(|s| Some(&s.step_id)))
    .bind(int(|s| Some(s.position)))
    .bind(text(|s| Some(&s.status)))
    .bind(int(|s| Some(s.attempts)))
    .bind(text(|s| s.input.as_deref()))
    .bind(text(|s| s.output.as_deref()))
    .bind(text(|s| s.error.as_deref()))
    .bind(int(|s| s.started_at))
    .bind(int(|s| s.finished_at))
    .bind(text(|s| s.attempt_log.as_deref()))
    .bind(text(|s| s.items.as_deref()))
    .execute(c)
    .await?;
    Ok(())
}

/// Ends the runs and drops their jobs; whether one of them held a lock (`concurrency:
/// per_alert`) that another run may be waiting for.
async fn end_runs<'c>(
    c: impl sqlx::PgExecutor<'c>,
    ends: &[(&str, &str, Option<&str>, i64)],
) -> std::result::Result<bool, sqlx::Error> {
    let locked: Vec<bool> = sqlx::query_scalar(
        "WITH ended AS (
            UPDATE executions x SET status = e.status, error = e.error, finished_at = e.at, started_at = COALESCE(x.started_at, e.at)
            FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS e(id, status, error, at) WHERE x.id = e.id
            RETURNING x.lock_key IS NOT NULL AS locked
         ), done AS (
            DELETE FROM jobs WHERE execution_id = ANY($1)
         )
         SELECT locked FROM ended",
    )
    .bind(ends.iter().map(|e| e.0).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.1).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.2).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.3).collect::<Vec<_>>())
    .fetch_all(c)
    .await?;
    Ok(locked.contains(&true))
}

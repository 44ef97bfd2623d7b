//! The hot statements (a delivery, a claim, a step, an end), run synchronously with rusqlite on
//! the raw handle of a sqlx connection while sqlx's worker thread is parked.
//!
//! Through sqlx every statement and every row is a round trip to the connection's worker thread;
//! under load those hand-offs were most of the server's CPU. Here a whole batch of these writes
//! runs on the writer's task as plain function calls, with prepared statements cached across
//! batches. The SQL is the same as the sqlx versions had.

use super::*;
use rusqlite::{params, Connection, OptionalExtension};
use rusqlite::ffi::sqlite3;
use sqlx::sqlite::LockedSqliteHandle;
use std::ptr::NonNull;

/// Enough for every hot statement, so that none is prepared twice.
const STATEMENT_CACHE: usize = 64;

/// A rusqlite connection over the handle of one sqlx connection, with its statement cache.
/// It is only handed out while sqlx's worker is parked (`with`), and is dropped (finalising its
/// cached statements) before the sqlx connection closes: keep it in a field declared before
/// the connection's.
pub(super) struct Direct {
    db: Connection,
    handle: NonNull<sqlite3>,
}

// SAFETY: the handle is only used through `with`, which holds sqlx's lock on it; a raw pointer
// is not Send by default only because the compiler cannot know that.
unsafe impl Send for Direct {}

impl Direct {
    pub(super) async fn open(conn: &mut SqliteConnection) -> Result<Direct> {
        let mut locked = conn.lock_handle().await?;
        let handle = locked.as_raw_handle();
        // SAFETY: the handle is open and stays open for as long as `conn` does, which outlives
        // this value (see above). `from_handle` does not take ownership: dropping the rusqlite
        // connection finalises its statements and leaves the handle open for sqlx.
        let db = unsafe { Connection::from_handle(handle.as_ptr()) }?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        drop(locked);
        Ok(Direct { db, handle })
    }

    /// Parks sqlx's worker and lends the rusqlite connection until the guard is dropped.
    pub(super) async fn lock<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> Result<Locked<'a>> {
        let mut guard = conn.lock_handle().await?;
        // The pool never swaps the connection under us (the writer holds it for good); this
        // checks that the handle is still the one the statements were prepared on.
        assert_eq!(guard.as_raw_handle(), self.handle, "sqlite handle changed");
        Ok(Locked {
            db: &self.db,
            _guard: guard,
        })
    }
}

pub(super) struct Locked<'a> {
    pub db: &'a Connection,
    _guard: LockedSqliteHandle<'a>,
}

pub(super) fn ingest(c: &Connection, ev: &NewEvent) -> Result<Ingested> {
    let mut outcome = ev.outcome;
    let mut status = ev.status_code;
    let mut reason = ev.reason.clone();
    if let Some((key, window_ms)) = &ev.dedupe {
        let original: Option<String> = c
            .prepare_cached(
                "SELECT id FROM events WHERE workflow_id = ? AND dedupe_key = ? AND received_at >= ? AND outcome IN ('started', 'filtered') LIMIT 1",
            )?
            .query_row(params![ev.workflow_id, key, ev.received_at - window_ms], |r| r.get(0))
            .optional()?;
        if let Some(original) = original {
            outcome = "duplicate";
            status = 202;
            reason = Some(format!("same notification as event {original}"));
        }
    }
    let mut admitted: &[NewExecution] = if outcome == "started" {
        &ev.executions
    } else {
        &[]
    };
    if let (Some((count, per_ms)), false) = (ev.max_runs, admitted.is_empty()) {
        let recent: i64 = c
            .prepare_cached(
                "SELECT COUNT(*) FROM executions WHERE workflow_id = ? AND created_at > ? AND event_id IS NOT NULL",
            )?
            .query_row(params![ev.workflow_id, ev.received_at - per_ms], |r| r.get(0))?;
        let room = (count - recent).max(0) as usize;
        if room < admitted.len() {
            let held = admitted.len() - room;
            reason = Some(format!(
                "max_runs: {held} of {} run(s) held back ({count} per {}s)",
                admitted.len(),
                per_ms / 1000
            ));
            if room == 0 {
                outcome = "throttled";
            }
            admitted = &admitted[..room];
        }
    }
    let executions: Vec<String> = admitted.iter().map(|e| e.id.clone()).collect();
    c.prepare_cached(
        "INSERT INTO events (id, workflow_id, received_at, outcome, status_code, reason, key_name, dedupe_key, executions, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        ev.id,
        ev.workflow_id,
        ev.received_at,
        outcome,
        status as i64,
        reason,
        ev.key_name,
        ev.dedupe.as_ref().map(|d| &d.0),
        serde_json::to_string(&executions).unwrap_or_default(),
        ev.body.as_deref(),
    ])?;
    for ex in admitted {
        insert_execution(c, ex, Some(&ev.id), ev.received_at)?;
    }
    if !ev.resolved_keys.is_empty() {
        mark_resolved(c, &ev.workflow_id, &ev.resolved_keys, ev.received_at)?;
    }
    if let Some(key) = ev.key_name.as_ref().filter(|_| ev.touch_key) {
        c.prepare_cached("UPDATE api_keys SET last_used_at = ? WHERE name = ?")?
            .execute(params![ev.received_at, key])?;
    }
    Ok(Ingested {
        outcome,
        executions,
    })
}

pub(super) fn insert_execution(
    c: &Connection,
    ex: &NewExecution,
    event_id: Option<&str>,
    now: i64,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO executions (id, workflow_id, version, status, trigger_type, event_id, alert_index, input, alert_key, lock_key, replay_of, created_at)
         VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        ex.id,
        ex.workflow_id,
        ex.version,
        ex.trigger_type,
        event_id,
        ex.alert_index,
        ex.input.as_deref(),
        ex.alert_key,
        ex.lock_key,
        ex.replay_of,
        now,
    ])?;
    c.prepare_cached("INSERT INTO jobs (execution_id, run_at) VALUES (?, ?)")?
        .execute(params![ex.id, now])?;
    Ok(())
}

/// Marks the unfinished runs about these alerts resolved, and brings waiting ones forward so
/// that their `until_resolved` waits end now.
fn mark_resolved(c: &Connection, workflow_id: &str, keys: &[String], now: i64) -> Result<()> {
    let keys = serde_json::to_string(keys).unwrap_or_default();
    let woken = c
        .prepare_cached(
            "UPDATE executions SET resolved_at = ? WHERE workflow_id = ? AND alert_key IN (SELECT value FROM json_each(?))
               AND status IN ('pending', 'running', 'waiting') AND resolved_at IS NULL RETURNING id",
        )?
        .query_map(params![now, workflow_id, keys], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    if !woken.is_empty() {
        c.prepare_cached(
            "UPDATE jobs SET run_at = ? WHERE run_at > ? AND execution_id IN (SELECT value FROM json_each(?))",
        )?
        .execute(params![now, now, serde_json::to_string(&woken).unwrap_or_default()])?;
    }
    Ok(())
}

pub(super) fn claim_jobs(
    c: &Connection,
    node: &str,
    now: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<(String, i64)>> {
    let claimed = c
        .prepare_cached(
            "UPDATE jobs SET lease_owner = ?1, lease_until = ?2, claims = claims + 1 WHERE execution_id IN (
                SELECT j.execution_id FROM jobs j JOIN executions x ON x.id = j.execution_id
                WHERE j.run_at <= ?3 AND (j.lease_until IS NULL OR j.lease_until < ?3)
                  AND (x.lock_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM executions o WHERE o.workflow_id = x.workflow_id AND o.lock_key = x.lock_key
                      AND o.id < x.id AND o.status IN ('pending', 'running', 'waiting')))
                ORDER BY j.run_at LIMIT ?4) RETURNING execution_id, claims",
        )?
        .query_map(params![node, now + lease_ms, now, limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // One statement per run, on the primary key: the former `id IN (json_each(?))` made the
    // planner walk `executions_by_status` over every unfinished execution, the whole backlog,
    // at each claim. Here a statement costs no hand-off, so one per row is cheap.
    let mut running = c.prepare_cached(
        "UPDATE executions SET status = 'running', started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN ('pending', 'running', 'waiting')",
    )?;
    for (id, _) in &claimed {
        running.execute(params![now, id])?;
    }
    Ok(claimed)
}

/// Keeps this node's leases on these executions' jobs; returns those asked to cancel.
pub(super) fn extend_leases(c: &Connection, node: &str, ids: &str, until: i64) -> Result<Vec<String>> {
    c.prepare_cached(
        "UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND execution_id IN (SELECT value FROM json_each(?))",
    )?
    .execute(params![until, node, ids])?;
    let cancelled = c
        .prepare_cached(
            "SELECT id FROM executions WHERE cancel_requested = 1 AND id IN (SELECT value FROM json_each(?))",
        )?
        .query_map(params![ids], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(cancelled)
}

pub(super) fn save_step(
    c: &Connection,
    id: &str,
    s: &StepRecord,
    remember: Option<&Remember>,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO steps (execution_id, step_id, position, status, attempts, input, output, error, started_at, finished_at, attempt_log, items)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (execution_id, step_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
           input = excluded.input, output = excluded.output, error = excluded.error,
           started_at = excluded.started_at, finished_at = excluded.finished_at,
           attempt_log = excluded.attempt_log, items = excluded.items",
    )?
    .execute(params![
        id,
        s.step_id,
        s.position,
        s.status,
        s.attempts,
        s.input,
        s.output,
        s.error,
        s.started_at,
        s.finished_at,
        s.attempt_log,
        s.items,
    ])?;
    if let Some(r) = remember {
        let now = s.finished_at.unwrap_or_default();
        for (name, value) in &r.values {
            if value.is_null() {
                c.prepare_cached(
                    "DELETE FROM memory WHERE workflow_id = ? AND fingerprint = ? AND name = ?",
                )?
                .execute(params![r.workflow_id, r.fingerprint, name])?;
            } else {
                c.prepare_cached(
                    "INSERT INTO memory (workflow_id, fingerprint, name, value, updated_at) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (workflow_id, fingerprint, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )?
                .execute(params![r.workflow_id, r.fingerprint, name, value.to_string(), now])?;
            }
        }
    }
    Ok(())
}

pub(super) fn finish_execution(
    c: &Connection,
    id: &str,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    c.prepare_cached(
        "UPDATE executions SET status = ?, error = ?, finished_at = ?, started_at = COALESCE(started_at, ?) WHERE id = ?",
    )?
    .execute(params![status, error, now, now, id])?;
    c.prepare_cached("DELETE FROM jobs WHERE execution_id = ?")?
        .execute(params![id])?;
    Ok(())
}

pub(super) fn park(c: &Connection, id: &str, run_at: i64) -> Result<()> {
    c.prepare_cached("UPDATE executions SET status = 'waiting' WHERE id = ? AND status = 'running'")?
        .execute(params![id])?;
    // claims = 1: a run that parks did not crash; MAX_CLAIMS counts from here.
    c.prepare_cached(
        "UPDATE jobs SET run_at = ?, lease_owner = NULL, lease_until = NULL, claims = 1 WHERE execution_id = ?",
    )?
    .execute(params![run_at, id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection as _, Executor};

    /// Each failure, once through sqlx and once through rusqlite on the same connection, maps
    /// to the same StoreError variant.
    #[tokio::test]
    async fn errors_map_as_through_sqlx() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL, b BLOB)")
            .await
            .unwrap();
        conn.execute("INSERT INTO t (k, u, n) VALUES ('a', 'x', 'n')").await.unwrap();
        let mut direct = Direct::open(&mut conn).await.unwrap();
        let cases = [
            ("INSERT INTO t (k, u, n) VALUES ('a', 'y', 'n')", "Conflict"),
            ("INSERT INTO t (k, u, n) VALUES ('b', 'x', 'n')", "Conflict"),
            ("INSERT INTO t (k, u) VALUES ('c', 'z')", "Unavailable"),
            ("SELECT k FROM t WHERE k = 'none'", "NotFound"),
            // SQLITE_FULL: the database may not grow past its pages.
            ("PRAGMA max_page_count = 2; INSERT INTO t (k, u, n, b) VALUES ('d', 'd', 'n', zeroblob(100000))", "Unavailable"),
            // SQLITE_READONLY.
            ("PRAGMA query_only = 1; INSERT INTO t (k, u, n) VALUES ('e', 'e', 'n')", "Unavailable"),
        ];
        let kind = |e: &StoreError| match e {
            StoreError::NotFound => "NotFound",
            StoreError::Conflict => "Conflict",
            StoreError::Unavailable(_) => "Unavailable",
            StoreError::State(_) => "State",
        };
        for (sql, want) in cases {
            let (setup, stmt) = sql.rsplit_once("; ").unwrap_or(("", sql));
            if !setup.is_empty() {
                conn.execute(setup).await.unwrap();
            }
            let via_sqlx = sqlx::query(stmt).fetch_one(&mut conn).await.map(|_| ()).map_err(StoreError::from);
            let locked = direct.lock(&mut conn).await.unwrap();
            let via_rusqlite = locked
                .db
                .query_row(stmt, [], |_| Ok(()))
                .map_err(StoreError::from);
            drop(locked);
            assert_eq!(kind(&via_sqlx.unwrap_err()), want, "{sql} through sqlx");
            assert_eq!(kind(&via_rusqlite.unwrap_err()), want, "{sql} through rusqlite");
        }
        let locked = direct.lock(&mut conn).await.unwrap();
        locked.db.flush_prepared_statement_cache();
        drop(locked);
        drop(direct);
    }
}

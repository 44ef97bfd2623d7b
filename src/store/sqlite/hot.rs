//! The hot statements (a delivery, a claim, a step, an end, and the reads behind them), run
//! synchronously with rusqlite on the handle of a sqlx connection (see `direct.rs`).
//!
//! Through sqlx every statement and every row is a round trip to the connection's worker thread;
//! under load those hand-offs were most of the server's CPU. Here they are plain function calls
//! with prepared statements cached per connection. The SQL is what the sqlx versions ran.

use super::recent::RecentDeliveries;
use super::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Mutex;

pub(super) fn ingest(
    c: &Connection,
    ev: &NewEvent,
    recent: &Mutex<RecentDeliveries>,
) -> Result<Ingested> {
    let mut outcome = ev.outcome;
    let mut status = ev.status_code;
    let mut reason = ev.reason.clone();
    // The writer alone uses it, one operation at a time: never contended.
    let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((key, window_ms)) = &ev.dedupe {
        if let Some(original) = find_duplicate(c, &mut recent, ev, key, *window_ms)? {
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
    if let (Some((key, _)), "started" | "filtered") = (&ev.dedupe, outcome) {
        recent.remember(&ev.workflow_id, key, ev.received_at, c.last_insert_rowid());
    }
    recent.expire(ev.received_at);
    drop(recent);
    for ex in admitted {
        insert_execution(c, ex, Some(&ev.id), ev.received_at, ev.lease.as_ref())?;
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

/// The event an accepted delivery with this key made inside the window, if any. Memory has
/// every candidate once the workflow's window is loaded; its row confirms it.
fn find_duplicate(
    c: &Connection,
    recent: &mut RecentDeliveries,
    ev: &NewEvent,
    key: &str,
    window_ms: i64,
) -> Result<Option<String>> {
    let since = ev.received_at - window_ms;
    if !recent.covers(&ev.workflow_id, window_ms) {
        recent.keep_for(&ev.workflow_id, window_ms);
        let mut load = c.prepare_cached(
            "SELECT rowid, dedupe_key, received_at FROM events WHERE workflow_id = ? AND received_at >= ? AND dedupe_key IS NOT NULL AND outcome IN ('started', 'filtered')",
        )?;
        let mut rows = load.query(params![ev.workflow_id, since])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(1)?;
            recent.remember(&ev.workflow_id, &key, row.get(2)?, row.get(0)?);
        }
    }
    let Some(seen) = recent.find(&ev.workflow_id, key, since) else {
        return Ok(None);
    };
    Ok(c.prepare_cached(
        "SELECT id FROM events WHERE rowid = ? AND workflow_id = ? AND dedupe_key = ? AND received_at >= ? AND outcome IN ('started', 'filtered')",
    )?
    .query_row(params![seen.rowid, ev.workflow_id, key, since], |r| r.get(0))
    .optional()?)
}

/// Queues a run; with a lease, as already claimed by that node (running, claimed once).
pub(super) fn insert_execution(
    c: &Connection,
    ex: &NewExecution,
    event_id: Option<&str>,
    now: i64,
    lease: Option<&Lease>,
) -> Result<()> {
    // Queued from the start (`run_at`); a run handed to this node at ingest is stored leased.
    c.prepare_cached(
        "INSERT INTO executions (id, workflow_id, version, status, trigger_type, event_id, alert_index, input, alert_key, lock_key, replay_of, created_at, started_at, watches_resolution, run_at, lease_owner, lease_until, claims)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        ex.id,
        ex.workflow_id,
        ex.version,
        if lease.is_some() { "running" } else { "pending" },
        ex.trigger_type,
        event_id,
        ex.alert_index,
        ex.input.as_deref(),
        ex.alert_key,
        ex.lock_key,
        ex.replay_of,
        now,
        lease.map(|_| now),
        ex.watches_resolution,
        now,
        lease.map(|l| &l.node),
        lease.map(|l| l.until),
        lease.is_some() as i64,
    ])?;
    Ok(())
}

/// Marks the unfinished runs about these alerts resolved, and brings waiting ones forward so
/// that their `until_resolved` waits end now.
///
/// One lookup per key on the partial index by alert, then one update per run found, by its
/// key: the single `UPDATE ... alert_key IN (SELECT value FROM json_each(?)) RETURNING id` it
/// replaces built temporary b-trees for the list and the returned rows at every resolved
/// delivery, found or not (about 48k instructions each under callgrind; bench/ANALYSIS.md,
/// round 15).
fn mark_resolved(c: &Connection, workflow_id: &str, keys: &[String], now: i64) -> Result<()> {
    let mut find = c.prepare_cached(
        "SELECT id FROM executions WHERE workflow_id = ? AND alert_key = ?
           AND watches_resolution = 1 AND status IN ('pending', 'running', 'waiting') AND resolved_at IS NULL",
    )?;
    let mut woken = Vec::new();
    for key in keys {
        let mut rows = find.query(params![workflow_id, key])?;
        while let Some(row) = rows.next()? {
            woken.push(row.get::<_, String>(0)?);
        }
    }
    if woken.is_empty() {
        return Ok(());
    }
    let mut mark = c.prepare_cached(
        "UPDATE executions SET resolved_at = ?1, run_at = CASE WHEN run_at > ?1 THEN ?1 ELSE run_at END WHERE id = ?2",
    )?;
    for id in &woken {
        mark.execute(params![now, id])?;
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
    // One statement claims and marks running; `run_at <= ?3` implies `run_at IS NOT NULL`, so
    // the search walks the queue's partial index, not the history.
    let claimed = c
        .prepare_cached(
            "UPDATE executions SET lease_owner = ?1, lease_until = ?2, claims = claims + 1,
                status = 'running', started_at = COALESCE(started_at, ?3)
              WHERE id IN (
                SELECT x.id FROM executions x
                WHERE x.run_at <= ?3 AND (x.lease_until IS NULL OR x.lease_until < ?3)
                  AND (x.lock_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM executions o WHERE o.workflow_id = x.workflow_id AND o.lock_key = x.lock_key
                      AND o.id < x.id AND o.status IN ('pending', 'running', 'waiting')))
                ORDER BY x.run_at LIMIT ?4) RETURNING id, claims",
        )?
        .query_map(params![node, now + lease_ms, now, limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(claimed)
}

/// Keeps this node's leases on these executions' jobs; returns those asked to cancel.
pub(super) fn extend_leases(
    c: &Connection,
    node: &str,
    ids: &str,
    until: i64,
) -> Result<Vec<String>> {
    c.prepare_cached(
        "UPDATE executions SET lease_until = ? WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))",
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
        "UPDATE executions SET status = ?, error = ?, finished_at = ?, started_at = COALESCE(started_at, ?),
           run_at = NULL, lease_owner = NULL, lease_until = NULL WHERE id = ?",
    )?
    .execute(params![status, error, now, now, id])?;
    Ok(())
}

pub(super) fn park(c: &Connection, id: &str, run_at: i64) -> Result<()> {
    // claims = 1: a run that parks did not crash; MAX_CLAIMS counts from here.
    c.prepare_cached(
        "UPDATE executions SET status = CASE status WHEN 'running' THEN 'waiting' ELSE status END,
           run_at = ?, lease_owner = NULL, lease_until = NULL, claims = 1 WHERE id = ? AND run_at IS NOT NULL",
    )?
    .execute(params![run_at, id])?;
    Ok(())
}

/// What a webhook delivery needs, in one read: the key with this digest, and the workflow at
/// its current version (without its source, which a delivery does not need).
pub(super) fn hook_lookup(
    c: &Connection,
    key_digest: &str,
    workflow_id: &str,
) -> Result<HookLookup> {
    let mut stmt = c.prepare_cached(
        "SELECT k.name, k.digest, k.value_enc, k.created_at, k.last_used_at,
                w.id, v.version, v.document, w.created_at, w.updated_at
         FROM (SELECT 1)
         LEFT JOIN api_keys k ON k.digest = ?1
         LEFT JOIN workflows w ON w.id = ?2
         LEFT JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version",
    )?;
    let found = stmt.query_row(params![key_digest, workflow_id], |r| {
        let key = match r.get::<_, Option<String>>(0)? {
            Some(name) => Some(KeyRecord {
                name,
                digest: r.get(1)?,
                value_enc: r.get(2)?,
                created_at: r.get(3)?,
                last_used_at: r.get(4)?,
            }),
            None => None,
        };
        let workflow = match r.get::<_, Option<String>>(5)? {
            Some(id) => Some(WorkflowRecord {
                id,
                version: r.get(6)?,
                document: r.get(7)?,
                source: String::new(),
                created_at: r.get(8)?,
                updated_at: r.get(9)?,
            }),
            None => None,
        };
        Ok(HookLookup { key, workflow })
    })?;
    Ok(found)
}

/// The execution, its input and, unless `fresh`, its steps.
pub(super) fn load_run(c: &Connection, execution_id: &str, fresh: bool) -> Result<RunState> {
    let (execution, input) = c
        .prepare_cached(
            "SELECT x.id, x.workflow_id, x.version, x.status, x.trigger_type, x.event_id, x.alert_index, x.error,
                    x.alert_key, x.resolved_at, x.cancel_requested, x.replay_of,
                    x.created_at, x.started_at, x.finished_at,
                    -- The runs of a split delivery share its body: the engine reads it once.
                    CASE WHEN x.alert_index IS NULL OR x.input IS NOT NULL THEN COALESCE(x.input, e.body) END
             FROM executions x LEFT JOIN events e ON e.id = x.event_id WHERE x.id = ?",
        )?
        .query_row(params![execution_id], |r| {
            let execution = ExecutionRecord {
                id: r.get(0)?,
                workflow_id: r.get(1)?,
                version: r.get(2)?,
                status: r.get(3)?,
                trigger_type: r.get(4)?,
                event_id: r.get(5)?,
                alert_index: r.get(6)?,
                error: r.get(7)?,
                alert_key: r.get(8)?,
                resolved_at: r.get(9)?,
                cancel_requested: r.get::<_, i64>(10)? != 0,
                replay_of: r.get(11)?,
                created_at: r.get(12)?,
                started_at: r.get(13)?,
                finished_at: r.get(14)?,
            };
            Ok((execution, body(r, 15)?))
        })?;
    let steps = if fresh {
        Vec::new()
    } else {
        c.prepare_cached(&format!(
            "SELECT {STEP_COLUMNS} FROM steps WHERE execution_id = ? ORDER BY position"
        ))?
        .query_map(params![execution_id], |r| {
            Ok(StepRecord {
                step_id: r.get(0)?,
                position: r.get(1)?,
                status: r.get(2)?,
                attempts: r.get(3)?,
                input: r.get(4)?,
                output: r.get(5)?,
                error: r.get(6)?,
                started_at: r.get(7)?,
                finished_at: r.get(8)?,
                attempt_log: r.get(9)?,
                items: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    Ok(RunState {
        execution,
        input: Bytes::from(input.unwrap_or_default()),
        steps,
    })
}

/// The body an execution runs on: its own input (manual runs) or its delivery's.
pub(super) fn execution_input(c: &Connection, id: &str) -> Result<Bytes> {
    let body = c
        .prepare_cached(
            "SELECT COALESCE(x.input, e.body) FROM executions x LEFT JOIN events e ON e.id = x.event_id WHERE x.id = ?",
        )?
        .query_row(params![id], |r| body(r, 0))?;
    Ok(Bytes::from(body.unwrap_or_default()))
}

/// A body column: written as a BLOB, but read as text too, as sqlx's decoding did.
fn body(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    use rusqlite::types::ValueRef;
    match r.get_ref(i)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Some(b.to_vec())),
        ValueRef::Null => Ok(None),
        _ => r.get(i),
    }
}

//! Transactions with several statements: saving a workflow version, taking a delivery,
//! alert memory and approvals.

use super::*;

pub(super) async fn save_workflow(
    c: &mut PgConnection,
    id: &str,
    document: &str,
    source: &str,
    now: i64,
) -> Result<SaveOutcome> {
    let current: Option<(i64, String)> = sqlx::query_as(
        "SELECT v.version, v.document FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version WHERE w.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    let outcome = match current {
        Some((version, doc)) if doc == document => SaveOutcome {
            version,
            created: false,
            unchanged: true,
        },
        Some((version, _)) => {
            sqlx::query("UPDATE workflows SET current_version = $1, updated_at = $2 WHERE id = $3")
                .bind(version + 1)
                .bind(now)
                .bind(id)
                .execute(&mut *c)
                .await?;
            SaveOutcome {
                version: version + 1,
                created: false,
                unchanged: false,
            }
        }
        None => {
            // A deleted workflow keeps its old versions' numbers going.
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(version) FROM workflow_versions WHERE workflow_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *c)
            .await?;
            let version = last.unwrap_or(0) + 1;
            sqlx::query("INSERT INTO workflows (id, current_version, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(id).bind(version).bind(now)
                .execute(&mut *c).await?;
            SaveOutcome {
                version,
                created: true,
                unchanged: false,
            }
        }
    };
    if !outcome.unchanged {
        sqlx::query("INSERT INTO workflow_versions (workflow_id, version, document, source, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id).bind(outcome.version).bind(document).bind(source).bind(now)
            .execute(&mut *c).await?;
    }
    Ok(outcome)
}

pub(super) async fn ingest(c: &mut PgConnection, ev: &NewEvent) -> Result<Ingested> {
    let mut outcome = ev.outcome;
    let mut status = ev.status_code;
    let mut reason = ev.reason.clone();
    if let Some((key, window_ms)) = &ev.dedupe {
        // Two nodes given the same notification (HA peers) check and insert one after the
        // other, so the second sees the first.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2))")
            .bind(&ev.workflow_id)
            .bind(key)
            .execute(&mut *c)
            .await?;
        let original: Option<String> = sqlx::query_scalar(
            "SELECT id FROM events WHERE workflow_id = $1 AND dedupe_key = $2 AND received_at >= $3 AND outcome IN ('started', 'filtered') LIMIT 1",
        )
        .bind(&ev.workflow_id).bind(key).bind(ev.received_at - window_ms)
        .fetch_optional(&mut *c).await?;
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
        // Counted under a per-workflow lock, so nodes together keep the limit.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('max_runs:' || $1))")
            .bind(&ev.workflow_id)
            .execute(&mut *c)
            .await?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM executions WHERE workflow_id = $1 AND created_at > $2 AND event_id IS NOT NULL",
        )
        .bind(&ev.workflow_id).bind(ev.received_at - per_ms)
        .fetch_one(&mut *c).await?;
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
    insert_delivery(c, ev, outcome, status, reason.as_deref(), admitted).await?;
    if !ev.resolved_keys.is_empty() {
        mark_resolved(c, &ev.workflow_id, &ev.resolved_keys, ev.received_at).await?;
    }
    if let Some(key) = ev.key_name.as_ref().filter(|_| ev.touch_key) {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE name = $2")
            .bind(ev.received_at)
            .bind(key)
            .execute(&mut *c)
            .await?;
    }
    Ok(Ingested {
        outcome,
        executions,
    })
}

/// The event, its runs and their jobs in one statement: one round trip to the server instead
/// of one per row. (Each round trip costs the server a wake-up and the statement's own
/// overhead, which were most of its CPU under load.) The foreign keys are checked at the end
/// of the statement, when the event is there. `outcome`, `status_code` and `reason` are what
/// the delivery's checks decided.
async fn insert_delivery(
    c: &mut PgConnection,
    ev: &NewEvent,
    outcome: &str,
    status_code: u16,
    reason: Option<&str>,
    runs: &[NewExecution],
) -> Result<()> {
    let column = |f: fn(&NewExecution) -> Option<String>| runs.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    sqlx::query(
        "WITH event AS (
            INSERT INTO events (id, workflow_id, received_at, outcome, status_code, reason, key_name, dedupe_key, executions, body)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ), runs AS (
            INSERT INTO executions (id, workflow_id, version, status, trigger_type, event_id, alert_index, input, alert_key, lock_key, replay_of, created_at, watches_resolution)
            SELECT r.id, r.workflow_id, r.version, 'pending', r.trigger_type, $1, r.alert_index, r.input, r.alert_key, r.lock_key, r.replay_of, $3, r.watches_resolution
            FROM unnest($11::text[], $12::text[], $13::bigint[], $14::text[], $15::bigint[], $16::bytea[], $17::text[], $18::text[], $19::text[], $20::int[])
              AS r(id, workflow_id, version, trigger_type, alert_index, input, alert_key, lock_key, replay_of, watches_resolution)
         ), queued AS (
            INSERT INTO jobs (execution_id, run_at) SELECT unnest($11::text[]), $3
         )
         SELECT 1",
    )
    .bind(&ev.id).bind(&ev.workflow_id).bind(ev.received_at).bind(outcome)
    .bind(status_code as i64).bind(reason).bind(&ev.key_name)
    .bind(ev.dedupe.as_ref().map(|d| &d.0))
    .bind(serde_json::to_string(&ids).unwrap_or_default())
    .bind(ev.body.as_deref())
    .bind(&ids)
    .bind(column(|r| Some(r.workflow_id.clone())))
    .bind(runs.iter().map(|r| r.version).collect::<Vec<_>>())
    .bind(column(|r| Some(r.trigger_type.to_string())))
    .bind(runs.iter().map(|r| r.alert_index).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.input.as_deref().map(<[u8]>::to_vec)).collect::<Vec<_>>())
    .bind(column(|r| r.alert_key.clone()))
    .bind(column(|r| r.lock_key.clone()))
    .bind(column(|r| r.replay_of.clone()))
    .bind(runs.iter().map(|r| r.watches_resolution as i32).collect::<Vec<_>>())
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn mark_resolved(
    c: &mut PgConnection,
    workflow_id: &str,
    keys: &[String],
    now: i64,
) -> Result<()> {
    let woken: Vec<String> = sqlx::query_scalar(
        "UPDATE executions SET resolved_at = $1 WHERE workflow_id = $2 AND alert_key = ANY($3)
           AND watches_resolution = 1 AND status IN ('pending', 'running', 'waiting') AND resolved_at IS NULL RETURNING id",
    )
    .bind(now)
    .bind(workflow_id)
    .bind(keys)
    .fetch_all(&mut *c)
    .await?;
    if !woken.is_empty() {
        sqlx::query("UPDATE jobs SET run_at = $1 WHERE run_at > $1 AND execution_id = ANY($2)")
            .bind(now)
            .bind(&woken)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

pub(super) async fn remember(c: &mut PgConnection, r: &Remember, now: i64) -> Result<()> {
    for (name, value) in &r.values {
        if value.is_null() {
            sqlx::query(
                "DELETE FROM memory WHERE workflow_id = $1 AND fingerprint = $2 AND name = $3",
            )
            .bind(&r.workflow_id)
            .bind(&r.fingerprint)
            .bind(name)
            .execute(&mut *c)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO memory (workflow_id, fingerprint, name, value, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (workflow_id, fingerprint, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(&r.workflow_id).bind(&r.fingerprint).bind(name).bind(value.to_string()).bind(now)
            .execute(&mut *c).await?;
        }
    }
    Ok(())
}

pub(super) async fn decide(pool: &PgPool, id: &str, d: &ApprovalRecord) -> Result<()> {
    let mut tx = pool.begin().await?;
    let row: Option<(Option<String>, String)> = sqlx::query_as(
        "SELECT s.status, x.status FROM executions x LEFT JOIN steps s ON s.execution_id = x.id AND s.step_id = $1 WHERE x.id = $2 FOR UPDATE OF x",
    )
    .bind(&d.step_id).bind(id).fetch_optional(&mut *tx).await?;
    let Some((step_status, run_status)) = row else {
        return Err(StoreError::NotFound);
    };
    let step_status = step_status.unwrap_or_else(|| "pending".into());
    let earlier: Option<(String, String)> = sqlx::query_as(
        "SELECT decision, decided_by FROM approvals WHERE execution_id = $1 AND step_id = $2",
    )
    .bind(id)
    .bind(&d.step_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((decision, by)) = earlier {
        return Err(StoreError::State(format!(
            "step {:?} was already {decision} by {by}",
            d.step_id
        )));
    }
    if step_status != "waiting" {
        return Err(StoreError::State(format!(
            "step {:?} is not waiting for a decision (step {step_status}, execution {run_status})",
            d.step_id
        )));
    }
    sqlx::query("INSERT INTO approvals (execution_id, step_id, decision, decided_by, decided_at, comment) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id).bind(&d.step_id).bind(&d.decision).bind(&d.decided_by).bind(d.decided_at).bind(&d.comment)
        .execute(&mut *tx).await?;
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE execution_id = $2 AND run_at > $1")
        .bind(d.decided_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

//! Transactions with several statements: saving a workflow version, alert memory and
//! approvals.

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

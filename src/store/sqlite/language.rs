//! The workflow language's state: parked runs, cancels, approvals, alert memory, secrets and
//! schedules.

use super::*;

impl SqliteStore {
    pub(super) async fn park_run(&self, execution_id: &str, run_at: i64) -> Result<()> {
        self.writer
            .write_sync(execution_id.to_string(), move |c, id| {
                hot::park(c, id, run_at)
            })
            .await
    }

    pub(super) async fn cancel_run(&self, execution_id: &str, now: i64) -> Result<CancelOutcome> {
        self.writer
            .write(execution_id.to_string(), move |c, id| {
                async move {
                    let status: String = sqlx::query_scalar("SELECT status FROM executions WHERE id = ?")
                        .bind(id.as_str()).fetch_one(&mut *c).await?;
                    match status.as_str() {
                        "pending" | "waiting" => {
                            sqlx::query("UPDATE executions SET status = 'cancelled', error = 'cancelled', finished_at = ?, run_at = NULL, lease_owner = NULL, lease_until = NULL WHERE id = ?")
                                .bind(now).bind(id.as_str()).execute(&mut *c).await?;
                            sqlx::query("UPDATE steps SET status = 'cancelled', finished_at = ? WHERE execution_id = ? AND status IN ('pending', 'running', 'waiting')")
                                .bind(now).bind(id.as_str()).execute(&mut *c).await?;
                            Ok(CancelOutcome::Cancelled)
                        }
                        "running" => {
                            sqlx::query("UPDATE executions SET cancel_requested = 1 WHERE id = ?")
                                .bind(id.as_str()).execute(&mut *c).await?;
                            Ok(CancelOutcome::Requested)
                        }
                        done => Err(StoreError::State(format!("execution {id} already ended ({done}); nothing to cancel"))),
                    }
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn decide_approval(
        &self,
        execution_id: &str,
        d: &ApprovalRecord,
    ) -> Result<()> {
        self.writer
            .write((execution_id.to_string(), d.clone()), move |c, args| {
                async move {
                    let (id, d) = &*args;
                    let step: Option<(String, String)> = sqlx::query_as(
                        "SELECT s.status, x.status FROM executions x LEFT JOIN steps s ON s.execution_id = x.id AND s.step_id = ? WHERE x.id = ?",
                    )
                    .bind(&d.step_id).bind(id).fetch_optional(&mut *c).await?
                    .map(|(s, x): (Option<String>, String)| (s.unwrap_or_else(|| "pending".into()), x));
                    let Some((step_status, run_status)) = step else { return Err(StoreError::NotFound) };
                    let earlier: Option<(String, String)> = sqlx::query_as(
                        "SELECT decision, decided_by FROM approvals WHERE execution_id = ? AND step_id = ?",
                    )
                    .bind(id).bind(&d.step_id).fetch_optional(&mut *c).await?;
                    if let Some((decision, by)) = earlier {
                        return Err(StoreError::State(format!("step {:?} was already {decision} by {by}", d.step_id)));
                    }
                    if step_status != "waiting" {
                        return Err(StoreError::State(format!(
                            "step {:?} is not waiting for a decision (step {step_status}, execution {run_status})", d.step_id
                        )));
                    }
                    sqlx::query("INSERT INTO approvals (execution_id, step_id, decision, decided_by, decided_at, comment) VALUES (?, ?, ?, ?, ?, ?)")
                        .bind(id).bind(&d.step_id).bind(&d.decision).bind(&d.decided_by).bind(d.decided_at).bind(&d.comment)
                        .execute(&mut *c).await?;
                    sqlx::query("UPDATE executions SET run_at = ? WHERE id = ? AND run_at > ?")
                        .bind(d.decided_at).bind(id).bind(d.decided_at).execute(&mut *c).await?;
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn list_approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>> {
        let rows: Vec<(String, String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT step_id, decision, decided_by, decided_at, comment FROM approvals WHERE execution_id = ?",
        )
        .bind(execution_id).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(
                |(step_id, decision, decided_by, decided_at, comment)| ApprovalRecord {
                    step_id,
                    decision,
                    decided_by,
                    decided_at,
                    comment,
                },
            )
            .collect())
    }

    pub(super) async fn load_memory(
        &self,
        workflow_id: &str,
        fingerprint: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, value FROM memory WHERE workflow_id = ? AND fingerprint = ?",
        )
        .bind(workflow_id)
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or_default()))
            .collect())
    }

    pub(super) async fn put_secret(
        &self,
        name: &str,
        value_enc: Vec<u8>,
        now: i64,
    ) -> Result<bool> {
        self.writer
            .write((name.to_string(), value_enc), move |c, args| {
                async move {
                    let (name, enc) = &*args;
                    let existed: Option<i64> = sqlx::query_scalar("SELECT 1 FROM secrets WHERE name = ?")
                        .bind(name).fetch_optional(&mut *c).await?;
                    sqlx::query("INSERT INTO secrets (name, value_enc, created_at, updated_at) VALUES (?, ?, ?, ?)
                                 ON CONFLICT (name) DO UPDATE SET value_enc = excluded.value_enc, updated_at = excluded.updated_at")
                        .bind(name).bind(enc).bind(now).bind(now).execute(&mut *c).await?;
                    Ok(existed.is_none())
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn read_secrets(
        &self,
        names: Option<Vec<String>>,
    ) -> Result<Vec<SecretRecord>> {
        let rows = match names {
            None => sqlx::query("SELECT name, X'' AS value_enc, created_at, updated_at FROM secrets ORDER BY name")
                .fetch_all(&self.pool).await?,
            Some(names) => sqlx::query("SELECT name, value_enc, created_at, updated_at FROM secrets WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name")
                .bind(serde_json::to_string(&names).unwrap_or_default())
                .fetch_all(&self.pool).await?,
        };
        Ok(rows
            .iter()
            .map(|r| SecretRecord {
                name: r.get("name"),
                value_enc: r.get("value_enc"),
                created_at: r.get("created_at"),
                updated_at: r.get("updated_at"),
            })
            .collect())
    }

    pub(super) async fn remove_secret(&self, name: &str) -> Result<()> {
        self.delete_one("DELETE FROM secrets WHERE name = ?", name)
            .await
    }

    pub(super) async fn schedules_due(&self, now: i64) -> Result<Vec<DueSchedule>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT s.workflow_id, w.current_version, s.next_fire_at FROM schedules s JOIN workflows w ON w.id = s.workflow_id WHERE s.next_fire_at <= ?",
        )
        .bind(now).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(workflow_id, version, next_fire_at)| DueSchedule {
                workflow_id,
                version,
                next_fire_at,
            })
            .collect())
    }

    pub(super) async fn fire(
        &self,
        due: &DueSchedule,
        next: i64,
        execution: &NewExecution,
        now: i64,
    ) -> Result<bool> {
        self.writer
            .write_sync((due.clone(), execution.clone()), move |c, (due, ex)| {
                let moved = c
                    .prepare_cached(
                        "UPDATE schedules SET next_fire_at = ? WHERE workflow_id = ? AND next_fire_at = ?",
                    )?
                    .execute(rusqlite::params![next, due.workflow_id, due.next_fire_at])?;
                if moved == 0 {
                    return Ok(false);
                }
                hot::insert_execution(c, ex, None, now, None)?;
                Ok(true)
            })
            .await
    }

    pub(super) async fn schedule_of(&self, workflow_id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT next_fire_at FROM schedules WHERE workflow_id = ?")
                .bind(workflow_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

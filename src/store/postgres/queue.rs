//! The queue on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED` so nodes never wait on each
//! other's rows, leases that a dead node's heartbeat stops extending, and LISTEN for work.

use super::*;

pub(super) async fn claim(
    pool: &PgPool,
    node: &str,
    now: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<(String, i64)>> {
    // Only the oldest unfinished run of a lock key is claimable, so runs for one alert go one
    // at a time and in order, whichever node claims them. One statement claims the jobs and
    // marks their runs running: it commits on its own, in one round trip.
    let claimed: Vec<(String, i64)> = sqlx::query_as(
        "WITH due AS (
            SELECT j.execution_id FROM jobs j JOIN executions x ON x.id = j.execution_id
            WHERE j.run_at <= $3 AND (j.lease_until IS NULL OR j.lease_until < $3)
              AND (x.lock_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM executions o WHERE o.workflow_id = x.workflow_id AND o.lock_key = x.lock_key
                  AND o.id < x.id AND o.status IN ('pending', 'running', 'waiting')))
            ORDER BY j.run_at LIMIT $4
            FOR UPDATE OF j SKIP LOCKED
         ), claimed AS (
            UPDATE jobs SET lease_owner = $1, lease_until = $2, claims = claims + 1
            FROM due WHERE jobs.execution_id = due.execution_id
            RETURNING jobs.execution_id, jobs.claims
         ), running AS (
            UPDATE executions SET status = 'running', started_at = COALESCE(started_at, $3)
            FROM claimed WHERE executions.id = claimed.execution_id AND executions.status IN ('pending', 'running', 'waiting')
         )
         SELECT execution_id, claims FROM claimed",
    )
    .bind(node)
    .bind(now + lease_ms)
    .bind(now)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(claimed)
}

pub(super) async fn extend(
    pool: &PgPool,
    node: &str,
    ids: &[String],
    until: i64,
) -> Result<Vec<String>> {
    sqlx::query(
        "UPDATE jobs SET lease_until = $1 WHERE lease_owner = $2 AND execution_id = ANY($3)",
    )
    .bind(until)
    .bind(node)
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT id FROM executions WHERE cancel_requested AND id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn park(pool: &PgPool, id: &str, run_at: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE executions SET status = 'waiting' WHERE id = $1 AND status = 'running'")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // claims = 1: a run that parks did not crash; MAX_CLAIMS counts from here.
    sqlx::query("UPDATE jobs SET run_at = $1, lease_owner = NULL, lease_until = NULL, claims = 1 WHERE execution_id = $2")
        .bind(run_at).bind(id)
        .execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn cancel(pool: &PgPool, id: &str, now: i64) -> Result<CancelOutcome> {
    let mut tx = pool.begin().await?;
    let status: String =
        sqlx::query_scalar("SELECT status FROM executions WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let outcome = match status.as_str() {
        "pending" | "waiting" => {
            sqlx::query("UPDATE executions SET status = 'cancelled', error = 'cancelled', finished_at = $1 WHERE id = $2")
                .bind(now).bind(id).execute(&mut *tx).await?;
            sqlx::query("UPDATE steps SET status = 'cancelled', finished_at = $1 WHERE execution_id = $2 AND status IN ('pending', 'running', 'waiting')")
                .bind(now).bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM jobs WHERE execution_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            CancelOutcome::Cancelled
        }
        "running" => {
            sqlx::query("UPDATE executions SET cancel_requested = TRUE WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            CancelOutcome::Requested
        }
        done => {
            return Err(StoreError::State(format!(
                "execution {id} already ended ({done}); nothing to cancel"
            )))
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Tells the nodes LISTENing that work is queued (NOTIFY), after the commit that queued it.
///
/// Not inside that transaction: PostgreSQL takes a lock when a transaction that notified
/// commits and holds it until the commit is flushed, so such commits go one at a time, one
/// fsync each. Under load nearly every backend was waiting for it (`Lock:object` at COMMIT in
/// `pg_stat_activity`). Here one task sends them, one at a time, and the announcements made
/// while one is sent become the next one.
#[derive(Clone)]
pub(super) struct Announcer {
    wanted: tokio::sync::mpsc::Sender<()>,
}

impl Announcer {
    /// The task ends with the store.
    pub(super) fn start(pool: PgPool, channel: &'static str) -> Announcer {
        let (wanted, mut asked) = tokio::sync::mpsc::channel::<()>(1);
        tokio::spawn(async move {
            while asked.recv().await.is_some() {
                let sent = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(channel)
                    .execute(&pool)
                    .await;
                // The other nodes still poll for work; a lost notice only delays it.
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "cannot NOTIFY the other nodes");
                }
            }
        });
        Announcer { wanted }
    }

    pub(super) fn announce(&self) {
        // Full: one is waiting to be sent already, and it will cover this one.
        let _ = self.wanted.try_send(());
    }
}

/// Calls `on_notice` for each NOTIFY on `channel` (queued work, changed keys). Reconnects
/// after the database comes back; in the meantime the engine's polling and the cache's expiry
/// carry on.
pub(super) async fn listen(pool: PgPool, channel: &'static str, on_notice: impl Fn()) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(channel).await.is_ok() {
                    while listener.recv().await.is_ok() {
                        on_notice();
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot LISTEN for work yet"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

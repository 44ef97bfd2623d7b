//! PostgreSQL: the store for several nodes sharing one database. The same tables and shapes as
//! SQLite; jobs are claimed with `FOR UPDATE SKIP LOCKED`; a delivery's duplicate check is
//! serialised per identity with an advisory lock, so two nodes given the same notification by
//! HA Alertmanager peers start one run; queued work and changed keys and workflows are
//! announced with NOTIFY. Deliveries, and the runs' step saves and ends, are written in batches
//! that share a transaction (`batch`).

mod batch;
mod ingest;
mod language;
mod queue;
mod run_writes;
mod users;

use super::*;
use run_writes::RunWrite;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};
use std::str::FromStr;
use std::time::Duration;

/// The channel a node NOTIFYs when it queues work, so idle nodes start it at once.
const WORK_CHANNEL: &str = "alertflow_work";

/// The channel a node NOTIFYs when it changed keys or workflows, so the others drop their
/// cached webhook lookups.
const HOOKS_CHANNEL: &str = "alertflow_hooks";

/// A pooled connection idle this long is pinged before it is lent again.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: PgPool,
    announcer: queue::Announcer,
    deliveries: batch::Batcher<ingest::Deliveries>,
    run_writes: batch::Batcher<run_writes::RunWrites>,
    hooks: Arc<super::hook_cache::HookCache>,
    hooks_changed: queue::Announcer,
}

impl PgStore {
    /// Connects and migrates (migrations take an advisory lock, so nodes starting together
    /// migrate once). `pool_size` bounds connections; a request that cannot get one within
    /// a few seconds fails as unavailable (503) rather than hanging.
    pub async fn open(url: &str, pool_size: u32) -> Result<PgStore> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings a connection (a round trip) before lending it, by default, and again
            // when it comes back. Under load a connection is back from its last use within
            // milliseconds, so the first ping doubled the round trips of a one-statement
            // write. One that sat idle a while may have been cut (PostgreSQL restarted, a
            // firewall's idle timeout) and is still checked; a cut one in use fails its
            // statement, which answers 503, and sqlx drops it.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(opts)
            .await?;
        super::migrate(sqlx::migrate!("migrations/postgres"), &pool).await?;
        let announcer = queue::Announcer::start(pool.clone(), WORK_CHANNEL);
        let deliveries = ingest::Deliveries {
            announcer: announcer.clone(),
        };
        let run_writes = run_writes::RunWrites {
            announcer: announcer.clone(),
        };
        let hooks = Arc::new(super::hook_cache::HookCache::default());
        let cache = hooks.clone();
        tokio::spawn(queue::listen(pool.clone(), HOOKS_CHANNEL, move || {
            cache.clear()
        }));
        Ok(PgStore {
            deliveries: batch::Batcher::start(pool.clone(), deliveries),
            run_writes: batch::Batcher::start(pool.clone(), run_writes),
            hooks_changed: queue::Announcer::start(pool.clone(), HOOKS_CHANNEL),
            hooks,
            announcer,
            pool,
        })
    }

    /// Runs a `DELETE ... WHERE x = $1`; no row deleted is `NotFound`.
    async fn delete_one(&self, sql: &'static str, key: &str) -> Result<()> {
        let done = sqlx::query(sql).bind(key).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Runs a change to keys or workflows, then drops the cached lookups, here and, by a
    /// NOTIFY, on the other nodes.
    async fn changing_hooks<T>(&self, change: impl std::future::Future<Output = T>) -> T {
        let out = self.hooks.changing(change).await;
        self.hooks_changed.announce();
        out
    }
}

fn key_from_row(r: &PgRow) -> KeyRecord {
    KeyRecord {
        name: r.get("name"),
        digest: r.get("digest"),
        value_enc: r.get("value_enc"),
        created_at: r.get("created_at"),
        last_used_at: r.get("last_used_at"),
    }
}

fn workflow_from_row(r: &PgRow) -> WorkflowRecord {
    WorkflowRecord {
        id: r.get("id"),
        version: r.get("version"),
        document: r.get("document"),
        source: r.get("source"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

fn execution_from_row(r: &PgRow) -> ExecutionRecord {
    ExecutionRecord {
        id: r.get("id"),
        workflow_id: r.get("workflow_id"),
        version: r.get("version"),
        status: r.get("status"),
        trigger_type: r.get("trigger_type"),
        event_id: r.get("event_id"),
        alert_index: r.get("alert_index"),
        error: r.get("error"),
        alert_key: r.get("alert_key"),
        resolved_at: r.get("resolved_at"),
        cancel_requested: r.get("cancel_requested"),
        replay_of: r.get("replay_of"),
        created_at: r.get("created_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
    }
}

fn step_from_row(r: &PgRow) -> StepRecord {
    StepRecord {
        step_id: r.get("step_id"),
        position: r.get("position"),
        status: r.get("status"),
        attempts: r.get("attempts"),
        input: r.get("input"),
        output: r.get("output"),
        error: r.get("error"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        attempt_log: r.get("attempt_log"),
        items: r.get("items"),
    }
}

/// A run's execution and its input, without its steps.
const RUN_SELECT: &str = "SELECT x.id, x.workflow_id, x.version, x.status, x.trigger_type, x.event_id, x.alert_index, x.error,
        x.alert_key, x.resolved_at, x.cancel_requested, x.replay_of,
        x.created_at, x.started_at, x.finished_at,
        -- The runs of a split delivery share its body: the engine reads it once.
        CASE WHEN x.alert_index IS NULL OR x.input IS NOT NULL THEN COALESCE(x.input, e.body) END AS body
    FROM executions x LEFT JOIN events e ON e.id = x.event_id";

fn run_from_row(r: &PgRow) -> RunState {
    let input: Option<Vec<u8>> = r.get("body");
    RunState {
        execution: execution_from_row(r),
        input: Bytes::from(input.unwrap_or_default()),
        steps: Vec::new(),
    }
}

const EXECUTION_COLUMNS: &str = "id, workflow_id, version, status, trigger_type, event_id, alert_index, error, alert_key, resolved_at, cancel_requested, replay_of, created_at, started_at, finished_at";
const STEP_COLUMNS: &str =
    "step_id, position, status, attempts, input, output, error, started_at, finished_at, attempt_log, items";
const WORKFLOW_SELECT: &str = "SELECT w.id, v.version, v.document, v.source, w.created_at, w.updated_at FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id";

/// Queues a run that no delivery started (manual, scheduled); a delivery's runs are written
/// with it (`ingest::insert`).
async fn insert_execution(c: &mut PgConnection, ex: &NewExecution, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO executions (id, workflow_id, version, status, trigger_type, alert_index, input, alert_key, lock_key, replay_of, created_at, watches_resolution)
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&ex.id).bind(&ex.workflow_id).bind(ex.version).bind(ex.trigger_type)
    .bind(ex.alert_index).bind(ex.input.as_deref())
    .bind(&ex.alert_key).bind(&ex.lock_key).bind(&ex.replay_of).bind(now)
    .bind(ex.watches_resolution as i32)
    .execute(&mut *c).await?;
    sqlx::query("INSERT INTO jobs (execution_id, run_at) VALUES ($1, $2)")
        .bind(&ex.id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn key_check(&self, sealed: Vec<u8>) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ('key_check', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(sealed)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM meta WHERE name = 'key_check'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    fn listen_for_work(&self, wake: std::sync::Arc<tokio::sync::Notify>) {
        tokio::spawn(queue::listen(self.pool.clone(), WORK_CHANNEL, move || {
            wake.notify_one()
        }));
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        self.insert_user(user).await
    }
    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        self.all_users().await
    }
    async fn get_user(&self, name: &str) -> Result<UserRecord> {
        self.one_user(name).await
    }
    async fn update_user(
        &self,
        name: &str,
        role: Option<&str>,
        password_hash: Option<&str>,
    ) -> Result<()> {
        self.change_user(name, role, password_hash).await
    }
    async fn delete_user(&self, name: &str) -> Result<()> {
        self.remove_user(name).await
    }
    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        self.insert_session(session).await
    }
    async fn session_identity(&self, digest: &str, now: i64) -> Result<Option<Identity>> {
        self.session_owner(digest, now).await
    }
    async fn delete_session(&self, digest: &str) -> Result<()> {
        self.end_session(digest).await
    }
    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        self.insert_token(token).await
    }
    async fn list_tokens(&self, user: &str) -> Result<Vec<TokenRecord>> {
        self.tokens_of(user).await
    }
    async fn delete_token(&self, user: &str, name: &str) -> Result<()> {
        self.remove_token(user, name).await
    }
    async fn token_identity(&self, digest: &str) -> Result<Option<Identity>> {
        self.token_owner(digest).await
    }
    async fn touch_token(&self, digest: &str, now: i64) -> Result<()> {
        self.mark_token_used(digest, now).await
    }
    async fn count_executions(&self, filter: &ExecutionFilter) -> Result<Vec<(String, i64)>> {
        self.executions_per_status(filter).await
    }

    async fn audit(&self, e: &AuditRecord) -> Result<()> {
        sqlx::query("INSERT INTO audit (at, actor, action, target, detail, status) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(e.at).bind(&e.actor).bind(&e.action).bind(&e.target).bind(&e.detail).bind(e.status)
            .execute(&self.pool).await?;
        Ok(())
    }

    async fn list_audit(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        let rows: Vec<(i64, String, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT at, actor, action, target, detail, status FROM audit ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(audit_from_row).collect())
    }

    async fn has_users(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn create_admin(
        &self,
        name: &str,
        password_hash: &str,
        token_digest: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, 'admin', $2, $3)")
            .bind(name)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO tokens (digest, user_name, created_at) VALUES ($1, $2, $3)")
            .bind(token_digest)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token_user(&self, digest: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT user_name FROM tokens WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn create_key(&self, key: &KeyRecord) -> Result<()> {
        let insert = sqlx::query(
            "INSERT INTO api_keys (name, digest, value_enc, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.name)
        .bind(&key.digest)
        .bind(&key.value_enc)
        .bind(key.created_at)
        .execute(&self.pool);
        self.changing_hooks(insert).await?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn get_key(&self, name: &str) -> Result<KeyRecord> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(key_from_row(&row))
    }

    async fn hook_lookup(&self, key_digest: &str, workflow_id: &str) -> Result<Arc<HookLookup>> {
        if let Some(lookup) = self.hooks.get(key_digest, workflow_id) {
            return Ok(lookup);
        }
        let generation = self.hooks.generation();
        let row = sqlx::query(
            "SELECT k.name, k.digest, k.value_enc, k.created_at, k.last_used_at,
                    w.id AS w_id, v.version, v.document, w.created_at AS w_created_at, w.updated_at AS w_updated_at
             FROM (SELECT 1) AS one
             LEFT JOIN api_keys k ON k.digest = $1
             LEFT JOIN workflows w ON w.id = $2
             LEFT JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version",
        )
        .bind(key_digest)
        .bind(workflow_id)
        .fetch_one(&self.pool)
        .await?;
        let key = row
            .get::<Option<String>, _>("name")
            .is_some()
            .then(|| key_from_row(&row));
        let workflow = row
            .get::<Option<String>, _>("w_id")
            .map(|id| WorkflowRecord {
                id,
                version: row.get("version"),
                document: row.get("document"),
                source: String::new(),
                created_at: row.get("w_created_at"),
                updated_at: row.get("w_updated_at"),
            });
        let lookup = Arc::new(HookLookup { key, workflow });
        self.hooks
            .keep(generation, key_digest, workflow_id, &lookup);
        Ok(lookup)
    }

    async fn delete_key(&self, name: &str) -> Result<()> {
        self.changing_hooks(self.delete_one("DELETE FROM api_keys WHERE name = $1", name))
            .await
    }

    async fn save_workflow(
        &self,
        id: &str,
        document: &str,
        source: &str,
        next_fire_at: Option<i64>,
        now: i64,
    ) -> Result<SaveOutcome> {
        self.changing_hooks(async {
            let mut tx = self.tx().await?;
            // One writer per workflow at a time: two nodes applying at once get versions n and n+1.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('workflow:' || $1))")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let outcome = language::save_workflow(&mut tx, id, document, source, now).await?;
            match next_fire_at {
                Some(at) => sqlx::query("INSERT INTO schedules (workflow_id, next_fire_at) VALUES ($1, $2) ON CONFLICT (workflow_id) DO UPDATE SET next_fire_at = CASE WHEN $3 THEN schedules.next_fire_at ELSE excluded.next_fire_at END")
                    .bind(id).bind(at).bind(outcome.unchanged).execute(&mut *tx).await?,
                None => sqlx::query("DELETE FROM schedules WHERE workflow_id = $1").bind(id).execute(&mut *tx).await?,
            };
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowRecord>> {
        let sql = format!("{WORKFLOW_SELECT} AND v.version = w.current_version ORDER BY w.id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(workflow_from_row).collect())
    }

    async fn get_workflow(&self, id: &str, version: Option<i64>) -> Result<WorkflowRecord> {
        let row = match version {
            None => {
                let sql = format!("{WORKFLOW_SELECT} AND v.version = w.current_version WHERE w.id = $1");
                sqlx::query(&sql).bind(id).fetch_one(&self.pool).await?
            }
            // Past versions stay readable after the workflow is deleted.
            Some(v) => sqlx::query(
                "SELECT workflow_id AS id, version, document, source, created_at, created_at AS updated_at FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
            )
            .bind(id).bind(v).fetch_one(&self.pool).await?,
        };
        Ok(workflow_from_row(&row))
    }

    async fn list_versions(&self, id: &str) -> Result<Vec<VersionSummary>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT version, created_at FROM workflow_versions WHERE workflow_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound);
        }
        Ok(rows
            .into_iter()
            .map(|(version, created_at)| VersionSummary {
                version,
                created_at,
            })
            .collect())
    }

    async fn delete_workflow(&self, id: &str) -> Result<()> {
        self.changing_hooks(async {
            let mut tx = self.tx().await?;
            sqlx::query("DELETE FROM schedules WHERE workflow_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM workflows WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn ingest(&self, event: NewEvent) -> Result<Ingested> {
        let touches_key = event.touch_key && event.key_name.is_some();
        let ingested = self.deliveries.write(event).await;
        if touches_key {
            // The cached key's last use is now old; the next lookup reads the new one.
            self.hooks.clear();
        }
        ingested
    }

    async fn list_events(&self, workflow: Option<&str>, limit: i64) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT id, workflow_id, received_at, outcome, status_code, reason, executions FROM events WHERE ($1::TEXT IS NULL OR workflow_id = $1) ORDER BY received_at DESC, id DESC LIMIT $2",
        )
        .bind(workflow).bind(limit)
        .fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| EventRecord {
                id: r.get("id"),
                workflow_id: r.get("workflow_id"),
                received_at: r.get("received_at"),
                outcome: r.get("outcome"),
                status_code: r.get("status_code"),
                reason: r.get("reason"),
                executions: serde_json::from_str(r.get::<&str, _>("executions"))
                    .unwrap_or_default(),
            })
            .collect())
    }

    async fn list_executions(&self, f: &ExecutionFilter) -> Result<Vec<ExecutionRecord>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE ($1::TEXT IS NULL OR workflow_id = $1) AND ($2::TEXT IS NULL OR status = $2)
               AND ($4::BIGINT IS NULL OR created_at >= $4) AND ($5::BIGINT IS NULL OR created_at < $5) ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(&f.workflow)
            .bind(&f.status)
            .bind(f.limit)
            .bind(f.since)
            .bind(f.until)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(execution_from_row).collect())
    }

    async fn get_execution(&self, id: &str) -> Result<(ExecutionRecord, Vec<StepRecord>)> {
        let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1");
        let ex = sqlx::query(&sql).bind(id).fetch_one(&self.pool).await?;
        let sql =
            format!("SELECT {STEP_COLUMNS} FROM steps WHERE execution_id = $1 ORDER BY position");
        let steps = sqlx::query(&sql).bind(id).fetch_all(&self.pool).await?;
        Ok((
            execution_from_row(&ex),
            steps.iter().map(step_from_row).collect(),
        ))
    }

    async fn execution_input(&self, id: &str) -> Result<Bytes> {
        let body: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT COALESCE(x.input, e.body) FROM executions x LEFT JOIN events e ON e.id = x.event_id WHERE x.id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(Bytes::from(body.unwrap_or_default()))
    }

    async fn create_execution(&self, execution: &NewExecution, now: i64) -> Result<()> {
        let mut tx = self.tx().await?;
        insert_execution(&mut tx, execution, now).await?;
        tx.commit().await?;
        self.announcer.announce();
        Ok(())
    }

    async fn claim_jobs(
        &self,
        node: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        queue::claim(&self.pool, node, now, lease_ms, limit).await
    }

    async fn extend_leases(
        &self,
        node: &str,
        execution_ids: Vec<String>,
        until: i64,
    ) -> Result<Vec<String>> {
        queue::extend(&self.pool, node, &execution_ids, until).await
    }

    async fn release_leases(&self, node: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn load_run(&self, execution_id: &str, fresh: bool) -> Result<RunState> {
        let row = sqlx::query(&format!("{RUN_SELECT} WHERE x.id = $1"))
            .bind(execution_id)
            .fetch_one(&self.pool)
            .await?;
        let mut run = run_from_row(&row);
        if !fresh {
            let sql = format!(
                "SELECT {STEP_COLUMNS} FROM steps WHERE execution_id = $1 ORDER BY position"
            );
            let rows = sqlx::query(&sql)
                .bind(execution_id)
                .fetch_all(&self.pool)
                .await?;
            run.steps = rows.iter().map(step_from_row).collect();
        }
        Ok(run)
    }

    async fn load_new_runs(&self, execution_ids: &[&str]) -> Result<Vec<RunState>> {
        let rows = sqlx::query(&format!("{RUN_SELECT} WHERE x.id = ANY($1)"))
            .bind(execution_ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    async fn save_step(
        &self,
        execution_id: &str,
        s: &StepRecord,
        remember: Option<&Remember>,
    ) -> Result<()> {
        let Some(r) = remember else {
            return self.save_steps(execution_id, std::slice::from_ref(s)).await;
        };
        let mut tx = self.tx().await?;
        run_writes::upsert_steps(&mut *tx, &[(execution_id, s)]).await?;
        language::remember(&mut tx, r, s.finished_at.unwrap_or_default()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn save_steps(&self, execution_id: &str, steps: &[StepRecord]) -> Result<()> {
        let steps = RunWrite::Steps {
            execution_id: execution_id.into(),
            steps: steps.to_vec(),
        };
        self.run_writes.write(steps).await
    }

    async fn finish_execution(
        &self,
        execution_id: &str,
        status: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let end = RunWrite::End {
            execution_id: execution_id.into(),
            status: status.into(),
            error: error.map(Into::into),
            now,
        };
        self.run_writes.write(end).await
    }

    async fn park(&self, execution_id: &str, run_at: i64) -> Result<()> {
        queue::park(&self.pool, execution_id, run_at).await
    }

    async fn cancel(&self, execution_id: &str, now: i64) -> Result<CancelOutcome> {
        queue::cancel(&self.pool, execution_id, now).await
    }

    async fn decide(&self, execution_id: &str, decision: &ApprovalRecord) -> Result<()> {
        language::decide(&self.pool, execution_id, decision).await?;
        self.announcer.announce();
        Ok(())
    }

    async fn approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>> {
        let rows: Vec<(String, String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT step_id, decision, decided_by, decided_at, comment FROM approvals WHERE execution_id = $1",
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

    async fn memory(
        &self,
        workflow_id: &str,
        fingerprint: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, value FROM memory WHERE workflow_id = $1 AND fingerprint = $2",
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

    async fn set_secret(&self, name: &str, value_enc: Vec<u8>, now: i64) -> Result<bool> {
        // xmax = 0 only on a fresh insert: whether this created the secret.
        let created: bool = sqlx::query_scalar(
            "INSERT INTO secrets (name, value_enc, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET value_enc = excluded.value_enc, updated_at = excluded.updated_at
             RETURNING (xmax = 0)",
        )
        .bind(name).bind(value_enc).bind(now)
        .fetch_one(&self.pool).await?;
        Ok(created)
    }

    async fn secrets(&self, names: Option<Vec<String>>) -> Result<Vec<SecretRecord>> {
        let rows = match names {
            None => sqlx::query("SELECT name, ''::BYTEA AS value_enc, created_at, updated_at FROM secrets ORDER BY name")
                .fetch_all(&self.pool).await?,
            Some(names) => sqlx::query("SELECT name, value_enc, created_at, updated_at FROM secrets WHERE name = ANY($1) ORDER BY name")
                .bind(names).fetch_all(&self.pool).await?,
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

    async fn delete_secret(&self, name: &str) -> Result<()> {
        self.delete_one("DELETE FROM secrets WHERE name = $1", name)
            .await
    }

    async fn due_schedules(&self, now: i64) -> Result<Vec<DueSchedule>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT s.workflow_id, w.current_version, s.next_fire_at FROM schedules s JOIN workflows w ON w.id = s.workflow_id WHERE s.next_fire_at <= $1",
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

    async fn fire_schedule(
        &self,
        due: &DueSchedule,
        next: i64,
        execution: &NewExecution,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.tx().await?;
        let moved = sqlx::query(
            "UPDATE schedules SET next_fire_at = $1 WHERE workflow_id = $2 AND next_fire_at = $3",
        )
        .bind(next)
        .bind(&due.workflow_id)
        .bind(due.next_fire_at)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        insert_execution(&mut tx, execution, now).await?;
        tx.commit().await?;
        self.announcer.announce();
        Ok(true)
    }

    async fn next_fire_at(&self, workflow_id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT next_fire_at FROM schedules WHERE workflow_id = $1")
                .bind(workflow_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests;

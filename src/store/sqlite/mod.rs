mod direct;
mod hot;
mod language;
mod recent;
mod users;
mod wal_sync;
mod writer;

use super::*;
use futures_util::FutureExt;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;
use writer::Writer;

/// Readers share a pool; every write goes through the group-commit `Writer`, which owns the
/// one write connection (SQLite admits one writer at a time anyway).
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Writer,
    /// The hot reads (a delivery's lookup, a run's state), synchronous (see `direct.rs`).
    readers: direct::Readers,
    hooks: super::hook_cache::HookCache,
    /// The writer's index of recent deliveries by dedupe key (see `recent.rs`).
    recent: std::sync::Arc<std::sync::Mutex<recent::RecentDeliveries>>,
    /// Held while the store is open (see `lock_database`).
    _lock: Option<std::fs::File>,
}

impl SqliteStore {
    /// Runs a `DELETE ... WHERE x = ?`; no row deleted is `NotFound`.
    async fn delete_one(&self, sql: &'static str, key: &str) -> Result<()> {
        self.writer
            .write(key.to_string(), move |c, key| {
                async move {
                    let done = sqlx::query(sql).bind(key.as_str()).execute(&mut *c).await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    /// Opens (creating if needed) and migrates the database; `commit_batch` observes how many
    /// writes share each commit.
    pub async fn open(url: &str, commit_batch: Histogram) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged delivery survives a power cut, not only a crash. The
            // writer's connection commits with NORMAL and syncs the log itself (`writer.rs`).
            .synchronous(SqliteSynchronous::Full)
            // For a new database (an existing one keeps its size): a delivery's row, its
            // execution and job and their index entries span fewer pages, so a commit writes
            // fewer WAL frames. Ingest +9 to 12% in four alternating pairs against 4 KiB; e2e
            // the same within noise.
            .page_size(8192)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let lock = lock_database(opts.get_filename()).await?;
        // A database on disk: the writer syncs its log itself, off the commit's path.
        let sync_wal = lock
            .is_some()
            .then(|| wal_sync::syncer(opts.get_filename()));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        super::migrate(sqlx::migrate!("migrations/sqlite"), &write).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A ping before each acquire is one more round trip to the connection's worker
            // thread per read; a local file's connection does not go stale.
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await?;
        Ok(SqliteStore {
            pool,
            writer: Writer::start(write, commit_batch, sync_wal),
            readers: direct::Readers::new(opts),
            hooks: Default::default(),
            recent: Default::default(),
            _lock: lock,
        })
    }
}

/// One server per SQLite database: the writer keeps recent deliveries in memory for finding
/// duplicates (`recent.rs`), which a second process writing the same file would not see. The
/// lock is the file `PATH-lock`, which the kernel releases when the process ends, however it
/// ends; a server that was just stopped is waited for a few seconds.
async fn lock_database(path: &std::path::Path) -> Result<Option<std::fs::File>> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let lock_path = format!("{}-lock", path.display());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Unavailable(format!("opening {lock_path}: {e}")))?;
    for _ in 0..50 {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Unavailable(format!("locking {lock_path}: {e}")))
            }
        }
    }
    Err(StoreError::Incompatible(format!(
        "another alertflow is using the SQLite database {} (it holds {lock_path}): one server per SQLite database; several nodes need PostgreSQL (--database-url postgres://...)",
        path.display()
    )))
}

/// SQLite counts every allocation under a global mutex for `sqlite3_memory_used`, which
/// nothing here reads: mutex lock and unlock went from 6% to 3% of the server's samples under
/// ingest, though the rate did not move measurably (the serial writer is the bound).
/// Call it first thing in `main`, while no other thread can be using SQLite; once SQLite has
/// started, the call is refused (SQLITE_MISUSE) and changes nothing.
pub fn skip_memory_statistics() {
    // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. sqlite3_config is not thread-safe, hence
    // the single-threaded caller.
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int);
    }
}

fn key_from_row(r: &sqlx::sqlite::SqliteRow) -> KeyRecord {
    KeyRecord {
        name: r.get("name"),
        digest: r.get("digest"),
        value_enc: r.get("value_enc"),
        created_at: r.get("created_at"),
        last_used_at: r.get("last_used_at"),
    }
}

fn workflow_from_row(r: &sqlx::sqlite::SqliteRow) -> WorkflowRecord {
    WorkflowRecord {
        id: r.get("id"),
        version: r.get("version"),
        document: r.get("document"),
        source: r.get("source"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

fn execution_from_row(r: &sqlx::sqlite::SqliteRow) -> ExecutionRecord {
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
        cancel_requested: r.get::<i64, _>("cancel_requested") != 0,
        replay_of: r.get("replay_of"),
        created_at: r.get("created_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
    }
}

fn step_from_row(r: &sqlx::sqlite::SqliteRow) -> StepRecord {
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

const EXECUTION_COLUMNS: &str = "id, workflow_id, version, status, trigger_type, event_id, alert_index, error, alert_key, resolved_at, cancel_requested, replay_of, created_at, started_at, finished_at";
const STEP_COLUMNS: &str =
    "step_id, position, status, attempts, input, output, error, started_at, finished_at, attempt_log, items";
const WORKFLOW_SELECT: &str = "SELECT w.id, v.version, v.document, v.source, w.created_at, w.updated_at FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id";

#[async_trait]
impl Store for SqliteStore {
    /// Every write goes through the one writer's queue, in the order it was sent.
    fn orders_concurrent_writes(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn key_check(&self, sealed: Vec<u8>) -> Result<Vec<u8>> {
        self.writer
            .write(sealed, move |c, sealed| {
                async move {
                    sqlx::query("INSERT INTO meta (name, value) VALUES ('key_check', ?) ON CONFLICT (name) DO NOTHING")
                        .bind(sealed.as_slice()).execute(&mut *c).await?;
                    Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = 'key_check'")
                        .fetch_one(&mut *c).await?)
                }
                .boxed()
            })
            .await
    }

    async fn audit(&self, e: &AuditRecord) -> Result<()> {
        self.writer
            .write(e.clone(), move |c, e| {
                async move {
                    sqlx::query("INSERT INTO audit (at, actor, action, target, detail, status) VALUES (?, ?, ?, ?, ?, ?)")
                        .bind(e.at).bind(&e.actor).bind(&e.action).bind(&e.target).bind(&e.detail).bind(e.status)
                        .execute(&mut *c).await?;
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    async fn list_audit(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        let rows: Vec<(i64, String, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT at, actor, action, target, detail, status FROM audit ORDER BY id DESC LIMIT ?",
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
        let (name, hash, digest) = (
            name.to_string(),
            password_hash.to_string(),
            token_digest.to_string(),
        );
        self.writer
            .write((name, hash, digest), move |c, args| {
                async move {
                    let (name, hash, digest) = &*args;
                    sqlx::query(
                        "INSERT INTO users (name, role, password_hash, created_at) VALUES (?, 'admin', ?, ?)",
                    )
                    .bind(name)
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "INSERT INTO tokens (digest, user_name, created_at) VALUES (?, ?, ?)",
                    )
                    .bind(digest)
                    .bind(name)
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                    Ok(())
                }
                .boxed()
            })
            .await
    }

    async fn token_user(&self, digest: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT user_name FROM tokens WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    // users and sessions
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

    async fn create_key(&self, key: &KeyRecord) -> Result<()> {
        let key = key.clone();
        let write = self
            .writer
            .write(key, move |c, args| {
                async move {
                    let key = &*args;
                    sqlx::query("INSERT INTO api_keys (name, digest, value_enc, created_at) VALUES (?, ?, ?, ?)")
                        .bind(&key.name).bind(&key.digest).bind(&key.value_enc).bind(key.created_at)
                        .execute(&mut *c).await?;
                    Ok(())
                }
                .boxed()
            });
        self.hooks.changing(write).await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn get_key(&self, name: &str) -> Result<KeyRecord> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE name = ?")
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
        let lookup = self
            .readers
            .read(|c| hot::hook_lookup(c, key_digest, workflow_id))
            .await
            .map(Arc::new)?;
        self.hooks
            .keep(generation, key_digest, workflow_id, &lookup);
        Ok(lookup)
    }

    async fn delete_key(&self, name: &str) -> Result<()> {
        self.hooks
            .changing(self.delete_one("DELETE FROM api_keys WHERE name = ?", name))
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
        let (id, document, source) = (id.to_string(), document.to_string(), source.to_string());
        let write = self
            .writer
            .write((id, document, source), move |c, args| {
                async move {
                    let (id, document, source) = &*args;
                    let outcome = save_workflow(c, id, document, source, now).await?;
                    match next_fire_at {
                        // An unchanged schedule keeps its next fire time.
                        Some(at) => sqlx::query("INSERT INTO schedules (workflow_id, next_fire_at) VALUES (?, ?) ON CONFLICT (workflow_id) DO UPDATE SET next_fire_at = CASE WHEN ? THEN schedules.next_fire_at ELSE excluded.next_fire_at END")
                            .bind(id.as_str()).bind(at).bind(outcome.unchanged).execute(&mut *c).await?,
                        None => sqlx::query("DELETE FROM schedules WHERE workflow_id = ?").bind(id.as_str()).execute(&mut *c).await?,
                    };
                    Ok(outcome)
                }
                .boxed()
            });
        self.hooks.changing(write).await
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowRecord>> {
        let sql = format!("{WORKFLOW_SELECT} AND v.version = w.current_version ORDER BY w.id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(workflow_from_row).collect())
    }

    async fn get_workflow(&self, id: &str, version: Option<i64>) -> Result<WorkflowRecord> {
        let row = match version {
            None => {
                let sql = format!("{WORKFLOW_SELECT} AND v.version = w.current_version WHERE w.id = ?");
                sqlx::query(&sql).bind(id).fetch_one(&self.pool).await?
            }
            // Old versions stay readable after the workflow is deleted: executions need them.
            Some(v) => sqlx::query(
                "SELECT workflow_id AS id, version, document, source, created_at, created_at AS updated_at FROM workflow_versions WHERE workflow_id = ? AND version = ?",
            )
            .bind(id).bind(v).fetch_one(&self.pool).await?,
        };
        Ok(workflow_from_row(&row))
    }

    async fn list_versions(&self, id: &str) -> Result<Vec<VersionSummary>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT version, created_at FROM workflow_versions WHERE workflow_id = ? ORDER BY version",
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
        self.hooks
            .changing(self.writer.write(id.to_string(), move |c, id| {
                async move {
                    sqlx::query("DELETE FROM schedules WHERE workflow_id = ?")
                        .bind(id.as_str())
                        .execute(&mut *c)
                        .await?;
                    let done = sqlx::query("DELETE FROM workflows WHERE id = ?")
                        .bind(id.as_str())
                        .execute(&mut *c)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }
                .boxed()
            }))
            .await
    }

    async fn ingest(&self, event: NewEvent) -> Result<Ingested> {
        let touches_key = event.touch_key && event.key_name.is_some();
        let recent = self.recent.clone();
        let ingested = self
            .writer
            .write_sync(event, move |c, ev| hot::ingest(c, ev, &recent))
            .await;
        if touches_key {
            // The cached key's last use is now old; the next lookup reads the new one.
            self.hooks.clear();
        }
        ingested
    }

    async fn list_events(&self, workflow: Option<&str>, limit: i64) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT id, workflow_id, received_at, outcome, status_code, reason, executions FROM events WHERE (?1 IS NULL OR workflow_id = ?1) ORDER BY received_at DESC, id DESC LIMIT ?2",
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
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE (?1 IS NULL OR workflow_id = ?1) AND (?2 IS NULL OR status = ?2)
               AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5) ORDER BY created_at DESC, id DESC LIMIT ?3"
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
        let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?");
        let ex = sqlx::query(&sql).bind(id).fetch_one(&self.pool).await?;
        let sql =
            format!("SELECT {STEP_COLUMNS} FROM steps WHERE execution_id = ? ORDER BY position");
        let steps = sqlx::query(&sql).bind(id).fetch_all(&self.pool).await?;
        Ok((
            execution_from_row(&ex),
            steps.iter().map(step_from_row).collect(),
        ))
    }

    async fn execution_input(&self, id: &str) -> Result<Bytes> {
        self.readers.read(|c| hot::execution_input(c, id)).await
    }

    async fn create_execution(&self, execution: &NewExecution, now: i64) -> Result<()> {
        self.writer
            .write_sync(execution.clone(), move |c, ex| {
                hot::insert_execution(c, ex, None, now, None)
            })
            .await
    }

    async fn claim_jobs(
        &self,
        node: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        self.writer
            .write_sync(node.to_string(), move |c, node| {
                hot::claim_jobs(c, node, now, lease_ms, limit)
            })
            .await
    }

    async fn extend_leases(
        &self,
        node: &str,
        execution_ids: Vec<String>,
        until: i64,
    ) -> Result<Vec<String>> {
        let ids = serde_json::to_string(&execution_ids).unwrap_or_default();
        self.writer
            .write_sync((node.to_string(), ids), move |c, (node, ids)| {
                hot::extend_leases(c, node, ids, until)
            })
            .await
    }

    async fn release_leases(&self, node: &str) -> Result<u64> {
        let node = node.to_string();
        self.writer
            .write(node, move |c, args| {
                async move {
                    let node = &*args;
                    let done = sqlx::query("UPDATE executions INDEXED BY executions_queue SET lease_owner = NULL, lease_until = NULL WHERE run_at IS NOT NULL AND lease_owner = ?")
                        .bind(node).execute(&mut *c).await?;
                    Ok(done.rows_affected())
                }
                .boxed()
            })
            .await
    }

    async fn load_run(&self, execution_id: &str, fresh: bool) -> Result<RunState> {
        self.readers
            .read(|c| hot::load_run(c, execution_id, fresh))
            .await
    }

    async fn save_step(
        &self,
        execution_id: &str,
        s: &StepRecord,
        remember: Option<&Remember>,
    ) -> Result<()> {
        let (id, s, remember) = (execution_id.to_string(), s.clone(), remember.cloned());
        self.writer
            .write_sync((id, s, remember), |c, (id, s, remember)| {
                hot::save_step(c, id, s, remember.as_ref())
            })
            .await
    }

    async fn save_steps(&self, execution_id: &str, steps: &[StepRecord]) -> Result<()> {
        let (id, steps) = (execution_id.to_string(), steps.to_vec());
        self.writer
            .write_sync((id, steps), |c, (id, steps)| {
                steps
                    .iter()
                    .try_for_each(|s| hot::save_step(c, id, s, None))
            })
            .await
    }

    async fn finish_execution(
        &self,
        execution_id: &str,
        status: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let (id, status, error) = (
            execution_id.to_string(),
            status.to_string(),
            error.map(str::to_string),
        );
        self.writer
            .write_sync((id, status, error), move |c, (id, status, error)| {
                hot::finish_execution(c, id, status, error.as_deref(), now)
            })
            .await
    }

    async fn park(&self, execution_id: &str, run_at: i64) -> Result<()> {
        self.park_run(execution_id, run_at).await
    }
    async fn cancel(&self, execution_id: &str, now: i64) -> Result<CancelOutcome> {
        self.cancel_run(execution_id, now).await
    }
    async fn decide(&self, execution_id: &str, decision: &ApprovalRecord) -> Result<()> {
        self.decide_approval(execution_id, decision).await
    }
    async fn approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>> {
        self.list_approvals(execution_id).await
    }
    async fn memory(
        &self,
        workflow_id: &str,
        fingerprint: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        self.load_memory(workflow_id, fingerprint).await
    }
    async fn set_secret(&self, name: &str, value_enc: Vec<u8>, now: i64) -> Result<bool> {
        self.put_secret(name, value_enc, now).await
    }
    async fn secrets(&self, names: Option<Vec<String>>) -> Result<Vec<SecretRecord>> {
        self.read_secrets(names).await
    }
    async fn delete_secret(&self, name: &str) -> Result<()> {
        self.remove_secret(name).await
    }
    async fn due_schedules(&self, now: i64) -> Result<Vec<DueSchedule>> {
        self.schedules_due(now).await
    }
    async fn fire_schedule(
        &self,
        expected: &DueSchedule,
        next: i64,
        execution: &NewExecution,
        now: i64,
    ) -> Result<bool> {
        self.fire(expected, next, execution, now).await
    }
    async fn next_fire_at(&self, workflow_id: &str) -> Result<Option<i64>> {
        self.schedule_of(workflow_id).await
    }
}

async fn save_workflow(
    c: &mut SqliteConnection,
    id: &str,
    document: &str,
    source: &str,
    now: i64,
) -> Result<SaveOutcome> {
    let current: Option<(i64, String)> = sqlx::query_as(
        "SELECT v.version, v.document FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version WHERE w.id = ?",
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
            sqlx::query("UPDATE workflows SET current_version = ?, updated_at = ? WHERE id = ?")
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
            // A deleted workflow keeps its old versions' numbers going, so that
            // executions of the old ones still point at the right document.
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(version) FROM workflow_versions WHERE workflow_id = ?",
            )
            .bind(id)
            .fetch_one(&mut *c)
            .await?;
            let version = last.unwrap_or(0) + 1;
            sqlx::query("INSERT INTO workflows (id, current_version, created_at, updated_at) VALUES (?, ?, ?, ?)")
                .bind(id).bind(version).bind(now).bind(now)
                .execute(&mut *c).await?;
            SaveOutcome {
                version,
                created: true,
                unchanged: false,
            }
        }
    };
    if !outcome.unchanged {
        sqlx::query("INSERT INTO workflow_versions (workflow_id, version, document, source, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id).bind(outcome.version).bind(document).bind(source).bind(now)
            .execute(&mut *c).await?;
    }
    Ok(outcome)
}

//! Storage behind one trait. SQLite is embedded; PostgreSQL follows with the same SQL shapes
//! (integer millisecond times, a job queue with leases). A job is an unfinished run's place in
//! the queue: PostgreSQL keeps it in a `jobs` table; SQLite in the run's own row, under a partial
//! index (one b-tree fewer per delivery, `migrations/sqlite/0008_queue_in_executions.sql`).

mod hook_cache;
mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::{skip_memory_statistics, SqliteStore};

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    /// The database could not be reached or refused the write: transient, worth a retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database was written by a newer alertflow: retrying will not help.
    #[error("{0}")]
    Incompatible(String),
    /// The record is not in a state that allows this (a decision on a step that is not
    /// waiting, say); the message says why.
    #[error("{0}")]
    State(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(d)
                if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
            {
                match d.code().as_deref().and_then(sqlite_hint) {
                    Some(hint) => StoreError::Unavailable(format!("{hint} ({e})")),
                    None => StoreError::Unavailable(e.to_string()),
                }
            }
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// What an operator should look at, for the SQLite errors a full or read-only disk causes.
/// `code` is SQLite's extended result code; its low byte is the primary one.
pub fn sqlite_hint(code: &str) -> Option<&'static str> {
    let primary = code.parse::<i32>().ok()? & 0xff;
    Some(match primary {
        13 => "the disk holding the database is full",
        8 => "the database is read-only: is the data dir's file system mounted read-only?",
        14 => "the database file cannot be opened: is the data dir writable, with space left?",
        10 => "the disk holding the database failed a read or write (full, read-only or failing)",
        _ => return None,
    })
}

/// The same mapping for the statements SQLite runs through rusqlite (`sqlite/hot.rs`). sqlx
/// turns on extended result codes for its connections, so `extended_code` tells a unique or
/// primary-key violation from the other constraints, as `is_unique_violation` does.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
        match &e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.extended_code,
                    SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict
            }
            rusqlite::Error::SqliteFailure(f, _) => match sqlite_hint(&f.extended_code.to_string())
            {
                Some(hint) => StoreError::Unavailable(format!("{hint} ({e})")),
                None => StoreError::Unavailable(e.to_string()),
            },
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Runs the migrations; a database that a newer alertflow migrated is refused with a message
/// that says so, rather than written to by code that does not know its schema.
pub async fn migrate<'a, A>(migrator: sqlx::migrate::Migrator, conn: A) -> Result<()>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    migrator.run(conn).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => StoreError::Incompatible(format!(
            "the database schema is newer than this alertflow (it has migration {v}, which this binary does not know): run the newer alertflow, or restore a backup"
        )),
        e => StoreError::Unavailable(format!("migrations: {e}")),
    })
}

/// What a webhook delivery needs (`Store::hook_lookup`): the key presented, if it exists, and
/// the workflow at its current version, if it exists, without its source.
#[derive(Debug)]
pub struct HookLookup {
    pub key: Option<KeyRecord>,
    pub workflow: Option<WorkflowRecord>,
}

#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub name: String,
    pub digest: String,
    pub value_enc: Vec<u8>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct WorkflowRecord {
    pub id: String,
    pub version: i64,
    /// Canonical JSON of the validated document.
    pub document: String,
    /// The text as applied.
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct VersionSummary {
    pub version: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct SaveOutcome {
    pub version: i64,
    pub created: bool,
    pub unchanged: bool,
}

/// A webhook delivery as the ingress decided it, ready to be written in one batch.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub workflow_id: String,
    pub received_at: i64,
    pub outcome: &'static str,
    pub status_code: u16,
    pub reason: Option<String>,
    pub key_name: Option<String>,
    /// Update the key's `last_used_at` (at most about once a minute, to spare a write).
    pub touch_key: bool,
    pub body: Option<Bytes>,
    /// Duplicate detection: the delivery's identity and how far back to look.
    pub dedupe: Option<(String, i64)>,
    /// `max_runs`: at most this many runs of the workflow in this many milliseconds.
    pub max_runs: Option<(i64, i64)>,
    /// Alert keys (fingerprints, and the groupKey when the whole group resolved) that this
    /// delivery reports resolved: runs waiting on them wake.
    pub resolved_keys: Vec<String>,
    pub executions: Vec<NewExecution>,
    /// The node that took the delivery runs its executions itself: they are stored running,
    /// with this node's lease, and started without a claim and a load (`ingest::hand_over`);
    /// the lease is kept and released as a claim's is.
    pub lease: Option<Lease>,
}

/// A job's lease: the node running it, until when.
#[derive(Debug, Clone)]
pub struct Lease {
    pub node: String,
    pub until: i64,
}

#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: String,
    pub workflow_id: String,
    pub version: i64,
    pub trigger_type: &'static str,
    pub alert_index: Option<i64>,
    /// Only for runs without an event (manual); webhook runs read the event's body.
    pub input: Option<Bytes>,
    /// The alert the run is about (fingerprint under `split: per_alert`, else groupKey).
    pub alert_key: Option<String>,
    /// Set under `concurrency: per_alert`: runs with one key run one at a time, in order.
    pub lock_key: Option<String>,
    pub replay_of: Option<String>,
    /// The run may wait `until_resolved`, so a resolved notification for its `alert_key` must
    /// find it and set its `resolved_at`. Other runs are not indexed by alert.
    pub watches_resolution: bool,
}

/// What became of a delivery once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub outcome: &'static str,
    pub executions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: String,
    pub workflow_id: String,
    pub received_at: i64,
    pub outcome: String,
    pub status_code: i64,
    pub reason: Option<String>,
    pub executions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    pub id: String,
    pub workflow_id: String,
    pub version: i64,
    pub status: String,
    pub trigger_type: String,
    pub event_id: Option<String>,
    pub alert_index: Option<i64>,
    pub error: Option<String>,
    pub alert_key: Option<String>,
    pub resolved_at: Option<i64>,
    pub cancel_requested: bool,
    pub replay_of: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A row of `audit`, as both stores select it.
pub fn audit_from_row(
    (at, actor, action, target, detail, status): (i64, String, String, String, Option<String>, i64),
) -> AuditRecord {
    AuditRecord {
        at,
        actor,
        action,
        target,
        detail,
        status,
    }
}

/// A JSON column kept as text (a step's input or output), as a value; null when absent.
pub fn stored_json(text: &Option<String>) -> serde_json::Value {
    text.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Default)]
pub struct StepRecord {
    pub step_id: String,
    pub position: i64,
    pub status: String,
    pub attempts: i64,
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// JSON: every attempt with its error.
    pub attempt_log: Option<String>,
    /// JSON: a foreach step's items.
    pub items: Option<String>,
}

/// Values a succeeded step leaves in an alert's memory, written with the step.
#[derive(Debug, Clone)]
pub struct Remember {
    pub workflow_id: String,
    pub fingerprint: String,
    /// Name to JSON value; null forgets the name.
    pub values: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct ApprovalRecord {
    pub step_id: String,
    pub decision: String,
    pub decided_by: String,
    pub decided_at: i64,
    pub comment: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SecretRecord {
    pub name: String,
    pub value_enc: Vec<u8>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a cancel request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run was queued or waiting: it is cancelled now.
    Cancelled,
    /// A worker is running it: it stops at once there.
    Requested,
}

#[derive(Debug, Clone)]
pub struct DueSchedule {
    pub workflow_id: String,
    pub version: i64,
    pub next_fire_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub workflow: Option<String>,
    pub status: Option<String>,
    /// Created at or after this time (ms).
    pub since: Option<i64>,
    /// Created before this time (ms).
    pub until: Option<i64>,
    pub limit: i64,
}

/// A user of the API and the web UI. `role` is `admin`, `editor` or `viewer`.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// A browser session; the cookie holds the value whose digest this is.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub digest: String,
    pub user_name: String,
    /// What the web UI sends back in `X-CSRF-Token` on unsafe requests.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A user's API token for the CLI; only its digest is kept.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub user_name: String,
    pub name: String,
    pub digest: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// One change made through the API, or one key revealed.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: i64,
    pub actor: String,
    /// Method and route: `DELETE /api/v1/keys/{name}`.
    pub action: String,
    /// The path requested: `/api/v1/keys/ops`.
    pub target: String,
    pub detail: Option<String>,
    pub status: i64,
}

/// Who a session or token belongs to.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub role: String,
    /// Sessions only: the CSRF token of the session.
    pub csrf: Option<String>,
    /// Tokens only: when the token was last used (touched at most about once a minute).
    pub last_used_at: Option<i64>,
}

/// Everything the engine needs to carry on with one execution.
#[derive(Debug, Clone)]
pub struct RunState {
    pub execution: ExecutionRecord,
    pub input: Bytes,
    pub steps: Vec<StepRecord>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn ping(&self) -> Result<()>;
    /// The master-key check: stores `sealed` (a value sealed with this node's master key)
    /// unless one is there already, and returns the one stored, for the caller to open.
    async fn key_check(&self, sealed: Vec<u8>) -> Result<Vec<u8>>;
    /// Wakes `wake` when another node queues work (PostgreSQL LISTEN/NOTIFY); with one node
    /// there is nothing to listen to.
    fn listen_for_work(&self, _wake: std::sync::Arc<tokio::sync::Notify>) {}

    // users and admin tokens
    async fn has_users(&self) -> Result<bool>;
    async fn create_admin(
        &self,
        name: &str,
        password_hash: &str,
        token_digest: &str,
        now: i64,
    ) -> Result<()>;
    async fn token_user(&self, digest: &str) -> Result<Option<String>>;

    // users and sessions
    async fn create_user(&self, user: &UserRecord) -> Result<()>;
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    async fn get_user(&self, name: &str) -> Result<UserRecord>;
    /// Changes a user's role and/or password hash. A new password ends the user's sessions.
    /// A change that would leave no admin is `State`.
    async fn update_user(
        &self,
        name: &str,
        role: Option<&str>,
        password_hash: Option<&str>,
    ) -> Result<()>;
    /// Removes a user with their sessions and tokens; removing the last admin is `State`.
    async fn delete_user(&self, name: &str) -> Result<()>;
    /// Stores a session (and drops expired ones).
    async fn create_session(&self, session: &SessionRecord) -> Result<()>;
    /// The user of the unexpired session with this digest.
    async fn session_identity(&self, digest: &str, now: i64) -> Result<Option<Identity>>;
    async fn delete_session(&self, digest: &str) -> Result<()>;
    /// A token name already taken by this user (the bootstrap token is `admin-token`) is
    /// `Conflict`.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    async fn list_tokens(&self, user: &str) -> Result<Vec<TokenRecord>>;
    async fn delete_token(&self, user: &str, name: &str) -> Result<()>;
    /// The user of the API token with this digest.
    async fn token_identity(&self, digest: &str) -> Result<Option<Identity>>;
    async fn touch_token(&self, digest: &str, now: i64) -> Result<()>;

    // the audit log
    async fn audit(&self, entry: &AuditRecord) -> Result<()>;
    /// Newest first.
    async fn list_audit(&self, limit: i64) -> Result<Vec<AuditRecord>>;

    // the web UI's executions page
    /// How many executions match `filter` (status and limit aside), per status.
    async fn count_executions(&self, filter: &ExecutionFilter) -> Result<Vec<(String, i64)>>;

    // API keys
    async fn create_key(&self, key: &KeyRecord) -> Result<()>;
    async fn list_keys(&self) -> Result<Vec<KeyRecord>>;
    async fn get_key(&self, name: &str) -> Result<KeyRecord>;
    /// What a webhook delivery needs, in one read: the key with this digest, and the workflow
    /// at its current version. Shared: a store may keep it for the next delivery.
    async fn hook_lookup(&self, key_digest: &str, workflow_id: &str) -> Result<Arc<HookLookup>>;
    async fn delete_key(&self, name: &str) -> Result<()>;

    // workflows
    /// Saves a new version (or nothing when unchanged); `next_fire_at` keeps the schedule of
    /// a schedule trigger (None removes it).
    async fn save_workflow(
        &self,
        id: &str,
        document: &str,
        source: &str,
        next_fire_at: Option<i64>,
        now: i64,
    ) -> Result<SaveOutcome>;
    async fn list_workflows(&self) -> Result<Vec<WorkflowRecord>>;
    /// The current version, or the one asked for.
    async fn get_workflow(&self, id: &str, version: Option<i64>) -> Result<WorkflowRecord>;
    async fn list_versions(&self, id: &str) -> Result<Vec<VersionSummary>>;
    async fn delete_workflow(&self, id: &str) -> Result<()>;

    /// Writes a delivery, deciding duplicates against what is already stored, with its
    /// executions and their jobs, in one transaction.
    async fn ingest(&self, event: NewEvent) -> Result<Ingested>;
    async fn list_events(&self, workflow: Option<&str>, limit: i64) -> Result<Vec<EventRecord>>;

    // executions
    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionRecord>>;
    async fn get_execution(&self, id: &str) -> Result<(ExecutionRecord, Vec<StepRecord>)>;
    async fn execution_input(&self, id: &str) -> Result<Bytes>;
    /// A run that no delivery started (manual); it is queued in the same transaction.
    async fn create_execution(&self, execution: &NewExecution, now: i64) -> Result<()>;

    // the queue and the engine
    /// Leases up to `limit` due jobs and marks their executions running: each job's execution
    /// id and how often it has been claimed.
    async fn claim_jobs(
        &self,
        node: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64)>>;
    /// Keeps the leases this node holds on these executions' jobs; returns those of them
    /// that someone asked to cancel.
    async fn extend_leases(
        &self,
        node: &str,
        execution_ids: Vec<String>,
        until: i64,
    ) -> Result<Vec<String>>;
    async fn release_leases(&self, node: &str) -> Result<u64>;
    /// The execution, its input and, unless `fresh` (first claim: nothing ran yet), its steps.
    async fn load_run(&self, execution_id: &str, fresh: bool) -> Result<RunState>;
    /// Runs just claimed for the first time, read together where one read is cheaper than one
    /// each (a round trip each on PostgreSQL); a run left out is loaded by `load_run`. SQLite's
    /// reads are in-process and leave every run to `load_run`.
    async fn load_new_runs(&self, _execution_ids: &[&str]) -> Result<Vec<RunState>> {
        Ok(Vec::new())
    }
    /// Whether writes started concurrently are committed in the order they were started
    /// (SQLite's single writer); the engine then sends a run's writes together.
    fn orders_concurrent_writes(&self) -> bool {
        false
    }
    /// Saves a step's state, with what it leaves in the alert's memory, in one transaction.
    async fn save_step(
        &self,
        execution_id: &str,
        step: &StepRecord,
        remember: Option<&Remember>,
    ) -> Result<()>;
    /// Saves several steps' states in one transaction (no memory).
    async fn save_steps(&self, execution_id: &str, steps: &[StepRecord]) -> Result<()> {
        for step in steps {
            self.save_step(execution_id, step, None).await?;
        }
        Ok(())
    }
    /// Puts a run aside until `run_at` (a wait, an approval, a retry's backoff): it holds no
    /// worker, and the job comes back then, or earlier when woken.
    async fn park(&self, execution_id: &str, run_at: i64) -> Result<()>;
    /// Cancels a queued or waiting run, or asks the worker running it to stop.
    async fn cancel(&self, execution_id: &str, now: i64) -> Result<CancelOutcome>;
    /// Records a decision on a waiting approval step and wakes its run; a second decision is
    /// `State`.
    async fn decide(&self, execution_id: &str, decision: &ApprovalRecord) -> Result<()>;
    async fn approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>>;
    async fn memory(
        &self,
        workflow_id: &str,
        fingerprint: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>>;

    // secrets
    async fn set_secret(&self, name: &str, value_enc: Vec<u8>, now: i64) -> Result<bool>;
    /// Names and times only (values stay encrypted), or the values of the names given.
    async fn secrets(&self, names: Option<Vec<String>>) -> Result<Vec<SecretRecord>>;
    async fn delete_secret(&self, name: &str) -> Result<()>;

    // schedules
    async fn due_schedules(&self, now: i64) -> Result<Vec<DueSchedule>>;
    /// Fires a schedule if no other node did: moves its next fire time from `expected` to
    /// `next` and queues the run, in one transaction. False when another node was first.
    async fn fire_schedule(
        &self,
        expected: &DueSchedule,
        next: i64,
        execution: &NewExecution,
        now: i64,
    ) -> Result<bool>;
    async fn next_fire_at(&self, workflow_id: &str) -> Result<Option<i64>>;
    /// Ends the execution and removes its job, in one transaction.
    async fn finish_execution(
        &self,
        execution_id: &str,
        status: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<()>;
}

#[cfg(test)]
pub(crate) mod tests;

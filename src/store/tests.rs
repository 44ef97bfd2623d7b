//! One suite for every store: each test runs against SQLite, and against PostgreSQL when
//! `ALERTFLOW_TEST_POSTGRES` names a server (a throwaway database is made per test).

use super::*;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use std::time::Duration;

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url, Histogram::new([1.0]))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

/// A database of its own on the PostgreSQL server the tests were given.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    admin: String,
    name: String,
}

impl TestDb {
    /// None (and a SKIPPED line) when no server is given; a failure instead under
    /// `ALERTFLOW_E2E=require`.
    pub async fn create() -> Option<TestDb> {
        let Ok(admin) = std::env::var("ALERTFLOW_TEST_POSTGRES") else {
            if std::env::var("ALERTFLOW_E2E").as_deref() == Ok("require") {
                panic!("ALERTFLOW_TEST_POSTGRES is not set and ALERTFLOW_E2E=require");
            }
            eprintln!("SKIPPED: set ALERTFLOW_TEST_POSTGRES=postgres://... to run the PostgreSQL store tests");
            return None;
        };
        let name = format!("alertflow_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("ALERTFLOW_TEST_POSTGRES is reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        let url = url.to_string();
        let store = PgStore::open(&url, 8).await.unwrap();
        Some(TestDb {
            store: Arc::new(store),
            url,

            admin,
            name,
        })
    }

    pub async fn drop_database(self) {
        drop(self.store);
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin)
            .await
            .unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await;
    }
}

/// Runs each named `async fn(Arc<dyn Store>)` against both stores.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _dir) = super::sqlite().await;
                super::$name(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::TestDb::create().await {
                    super::$name(db.store.clone()).await;
                    db.drop_database().await;
                }
            }
        }
    )*};
}

both_stores!(
    concurrent_writes_fail_alone,
    duplicates_are_decided_once,
    a_delivery_that_cannot_be_written_fails_alone,
    a_duplicate_is_one_accepted_inside_the_window_for_the_same_workflow,
    a_delivery_that_failed_to_commit_is_no_original,
    a_schedule_fires_once_when_two_nodes_race,
    each_job_is_claimed_by_one_node,
    a_delivery_taken_with_a_lease_is_claimed_already,
    parked_runs_wake_on_decisions_and_resolves,
    a_cancelled_run_leaves_the_queue,
    a_resolve_marks_only_runs_that_watch_for_it,
    users_sessions_and_tokens_keep_an_admin,
    a_delivery_runs_and_ends_as_stored,
    runs_in_progress_write_together_and_fail_alone,
);

fn key(name: &str, digest: &str) -> KeyRecord {
    KeyRecord {
        name: name.into(),
        digest: digest.into(),
        value_enc: vec![1],
        created_at: 1,
        last_used_at: None,
    }
}

pub(crate) fn event(id: &str, dedupe: &str) -> NewEvent {
    NewEvent {
        lease: None,
        id: id.into(),
        workflow_id: "w".into(),
        received_at: 1_000,
        outcome: "started",
        status_code: 202,
        reason: None,
        key_name: None,
        touch_key: false,
        body: Some(Bytes::from_static(b"{}")),
        dedupe: Some((dedupe.into(), 60_000)),
        max_runs: None,
        resolved_keys: vec![],
        executions: vec![],
    }
}

async fn concurrent_writes_fail_alone(store: Arc<dyn Store>) {
    // Twenty writers race for one key name: they land in the same batches, exactly one wins,
    // and the losers' failures do not undo the unrelated writes beside them.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let same = s.create_key(&key("ops", &format!("d{i}"))).await;
            let own = s.create_key(&key(&format!("k{i}"), &format!("e{i}"))).await;
            (same, own)
        }));
    }
    let mut wins = 0;
    for t in tasks {
        let (same, own) = t.await.unwrap();
        match same {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected {e}"),
        }
        own.unwrap();
    }
    assert_eq!(wins, 1);
    assert_eq!(store.list_keys().await.unwrap().len(), 21);
}

async fn duplicates_are_decided_once(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.ingest(event(&format!("e{i}"), "same"))
                .await
                .unwrap()
                .outcome
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    outcomes.sort();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "started").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "duplicate").count(), 9);
}

async fn a_delivery_that_cannot_be_written_fails_alone(store: Arc<dyn Store>) {
    // Deliveries that arrive together share a commit. One whose run's id is taken fails; the
    // others are kept and answered as started.
    store
        .create_execution(&manual_run("taken"), 1)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = store.clone();
        let run = if i == 7 {
            "taken".into()
        } else {
            format!("r{i}")
        };
        tasks.push(tokio::spawn(async move {
            let ev = NewEvent {
                executions: vec![manual_run(&run)],
                ..event(&format!("e{i}"), &format!("k{i}"))
            };
            s.ingest(ev).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        match (i, t.await.unwrap()) {
            (7, Err(_)) => {}
            (7, Ok(o)) => panic!("the delivery with a taken run id was {}", o.outcome),
            (_, r) => assert_eq!(r.unwrap().outcome, "started"),
        }
    }
    let events = store.list_events(None, 100).await.unwrap();
    assert_eq!(events.len(), 19);
    assert!(events.iter().all(|e| e.id != "e7"));
}

/// An accepted delivery with the key, at `received_at`, looking back `window_ms`.
fn delivery(id: &str, workflow: &str, key: &str, received_at: i64, window_ms: i64) -> NewEvent {
    NewEvent {
        workflow_id: workflow.into(),
        received_at,
        dedupe: Some((key.into(), window_ms)),
        ..event(id, key)
    }
}

/// Ingests the delivery; its outcome, and the reason its event was given.
async fn take(store: &Arc<dyn Store>, ev: NewEvent) -> Taken {
    let (id, workflow) = (ev.id.clone(), ev.workflow_id.clone());
    let outcome = store.ingest(ev).await.unwrap().outcome;
    let events = store.list_events(Some(&workflow), 1000).await.unwrap();
    let reason = events.into_iter().find(|e| e.id == id).unwrap().reason;
    Taken { outcome, reason }
}

struct Taken {
    outcome: &'static str,
    reason: Option<String>,
}

async fn a_duplicate_is_one_accepted_inside_the_window_for_the_same_workflow(
    store: Arc<dyn Store>,
) {
    assert_eq!(
        take(&store, delivery("a", "w", "k", 10_000, 1_000))
            .await
            .outcome,
        "started"
    );
    let dup = take(&store, delivery("b", "w", "k", 10_900, 1_000)).await;
    assert_eq!(dup.outcome, "duplicate");
    assert_eq!(dup.reason.as_deref(), Some("same notification as event a"));
    // Another workflow, another key: not duplicates.
    assert_eq!(
        take(&store, delivery("c", "w2", "k", 10_900, 1_000))
            .await
            .outcome,
        "started"
    );
    assert_eq!(
        take(&store, delivery("d", "w", "k2", 10_900, 1_000))
            .await
            .outcome,
        "started"
    );
    // Past the window, the same key is new again, and is then the one later ones repeat.
    assert_eq!(
        take(&store, delivery("e", "w", "k", 11_500, 1_000))
            .await
            .outcome,
        "started"
    );
    let dup = take(&store, delivery("f", "w", "k", 12_000, 1_000)).await;
    assert_eq!(dup.reason.as_deref(), Some("same notification as event e"));
    // A window widened later reaches back to deliveries taken under the narrower one.
    let dup = take(&store, delivery("g", "w", "k2", 15_000, 10_000)).await;
    assert_eq!(dup.reason.as_deref(), Some("same notification as event d"));
    // A duplicate is no original: past the first one's window, nothing repeats.
    assert_eq!(
        take(&store, delivery("h", "w", "k", 13_001, 1_000))
            .await
            .outcome,
        "started"
    );
}

async fn a_delivery_that_failed_to_commit_is_no_original(store: Arc<dyn Store>) {
    let with_run = |id: &str, key: &str, run_id: &str| NewEvent {
        executions: vec![manual_run(run_id)],
        ..event(id, key)
    };
    store.ingest(with_run("a", "k1", "x1")).await.unwrap();
    // Its run's id is taken, so the delivery fails and nothing of it is kept...
    assert!(store.ingest(with_run("b", "k2", "x1")).await.is_err());
    // ...and Alertmanager's retry of it is not taken for a duplicate.
    let retry = store.ingest(with_run("c", "k2", "x2")).await.unwrap();
    assert_eq!(retry.outcome, "started");
}

async fn a_schedule_fires_once_when_two_nodes_race(store: Arc<dyn Store>) {
    let doc = r#"{"name":"s","trigger":{"type":"schedule","every":"1m"},"steps":[{"id":"a","uses":"fail"}]}"#;
    store
        .save_workflow("s", doc, doc, Some(60_000), 1)
        .await
        .unwrap();
    let due = store.due_schedules(60_000).await.unwrap();
    assert_eq!(due.len(), 1);
    let run = |id: &str| NewExecution {
        id: id.into(),
        workflow_id: "s".into(),
        version: 1,
        trigger_type: "schedule",
        alert_index: None,
        input: Some(Bytes::from_static(b"{}")),
        alert_key: None,
        lock_key: None,
        replay_of: None,
        watches_resolution: false,
    };
    // Both nodes read the same due time; only the first compare-and-set queues a run.
    let first = store
        .fire_schedule(&due[0], 120_000, &run("x1"), 60_000)
        .await
        .unwrap();
    let second = store
        .fire_schedule(&due[0], 120_000, &run("x2"), 60_000)
        .await
        .unwrap();
    assert_eq!((first, second), (true, false));
    assert!(store.get_execution("x1").await.is_ok());
    assert!(matches!(
        store.get_execution("x2").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.next_fire_at("s").await.unwrap(), Some(120_000));
    assert!(store.due_schedules(60_000).await.unwrap().is_empty());
}

async fn a_resolve_marks_only_runs_that_watch_for_it(store: Arc<dyn Store>) {
    let watching = manual_run("w1");
    let other = NewExecution {
        watches_resolution: false,
        ..manual_run("o1")
    };
    store.create_execution(&watching, 1).await.unwrap();
    store.create_execution(&other, 1).await.unwrap();
    let resolved = NewEvent {
        resolved_keys: vec!["fp".into()],
        ..event("e1", "resolved")
    };
    store.ingest(resolved).await.unwrap();
    let resolved_at = |id: &'static str| {
        let store = store.clone();
        async move { store.get_execution(id).await.unwrap().0.resolved_at }
    };
    assert_eq!(resolved_at("w1").await, Some(1_000));
    assert_eq!(
        resolved_at("o1").await,
        None,
        "a run that cannot wait until_resolved is not looked up by its alert"
    );
}

pub(crate) fn manual_run(id: &str) -> NewExecution {
    NewExecution {
        id: id.into(),
        workflow_id: "w".into(),
        version: 1,
        trigger_type: "manual",
        alert_index: None,
        input: Some(Bytes::from_static(b"{}")),
        alert_key: Some("fp".into()),
        lock_key: None,
        replay_of: None,
        watches_resolution: true,
    }
}

async fn each_job_is_claimed_by_one_node(store: Arc<dyn Store>) {
    for i in 0..30 {
        store
            .create_execution(&manual_run(&format!("x{i:02}")), 1)
            .await
            .unwrap();
    }
    // Two nodes claim in small batches at once until nothing is left.
    let node = |name: &'static str| {
        let s = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_jobs(name, 10, 60_000, 4).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|(id, _)| id));
            }
        })
    };
    let (a, b) = (node("a"), node("b"));
    let mut all = a.await.unwrap();
    all.extend(b.await.unwrap());
    all.sort();
    let expected: Vec<String> = (0..30).map(|i| format!("x{i:02}")).collect();
    assert_eq!(all, expected);
    // A lease that ran out (a dead node) makes the job claimable again.
    let again = store
        .claim_jobs("c", 60_000 + 11, 60_000, 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 30);
    assert!(again.iter().all(|(_, claims)| *claims == 2));
}

async fn a_delivery_taken_with_a_lease_is_claimed_already(store: Arc<dyn Store>) {
    // The node that takes a delivery may run it at once: its run is stored running, under
    // that node's lease, and no other node claims it until the lease has run out.
    let leased = NewEvent {
        executions: vec![manual_run("mine")],
        lease: Some(Lease {
            node: "a".into(),
            until: 61_000,
        }),
        ..event("e1", "k1")
    };
    let queued = NewEvent {
        executions: vec![NewExecution {
            alert_key: Some("other".into()),
            ..manual_run("theirs")
        }],
        ..event("e2", "k2")
    };
    store.ingest(leased).await.unwrap();
    store.ingest(queued).await.unwrap();
    let (run, _) = store.get_execution("mine").await.unwrap();
    assert_eq!(
        (run.status.as_str(), run.started_at),
        ("running", Some(1_000))
    );
    let claimed = store.claim_jobs("b", 2_000, 60_000, 10).await.unwrap();
    assert_eq!(claimed, [("theirs".to_string(), 1)]);
    let after_lease = store.claim_jobs("b", 61_001, 60_000, 10).await.unwrap();
    assert_eq!(after_lease, [("mine".to_string(), 2)]);
}

async fn a_cancelled_run_leaves_the_queue(store: Arc<dyn Store>) {
    // One cancelled while pending, one while parked: neither is claimed again, even once
    // every lease has run out and their wait is due, and both stay cancelled.
    store.create_execution(&manual_run("c1"), 1).await.unwrap();
    store.create_execution(&manual_run("c2"), 1).await.unwrap();
    let claimed = store.claim_jobs("n", 1, 1_000, 1).await.unwrap();
    let parked = claimed[0].0.clone();
    store.park(&parked, 50).await.unwrap();
    for id in ["c1", "c2"] {
        assert_eq!(store.cancel(id, 2).await.unwrap(), CancelOutcome::Cancelled);
    }
    assert!(store
        .claim_jobs("n", 100_000, 1_000, 10)
        .await
        .unwrap()
        .is_empty());
    for id in ["c1", "c2"] {
        assert_eq!(store.get_execution(id).await.unwrap().0.status, "cancelled");
    }
}

async fn parked_runs_wake_on_decisions_and_resolves(store: Arc<dyn Store>) {
    store.create_execution(&manual_run("p1"), 1).await.unwrap();
    assert_eq!(store.claim_jobs("n", 1, 1_000, 10).await.unwrap().len(), 1);
    let waiting = StepRecord {
        step_id: "ok".into(),
        status: "waiting".into(),
        started_at: Some(1),
        ..Default::default()
    };
    store.save_step("p1", &waiting, None).await.unwrap();
    store.park("p1", 1_000_000).await.unwrap();
    assert_eq!(store.get_execution("p1").await.unwrap().0.status, "waiting");
    assert!(store
        .claim_jobs("n", 2, 1_000, 10)
        .await
        .unwrap()
        .is_empty());

    let decision = ApprovalRecord {
        step_id: "ok".into(),
        decision: "approved".into(),
        decided_by: "admin".into(),
        decided_at: 3,
        comment: None,
    };
    store.decide("p1", &decision).await.unwrap();
    assert!(matches!(
        store.decide("p1", &decision).await,
        Err(StoreError::State(_))
    ));
    let claimed = store.claim_jobs("n", 3, 1_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "a decision brings the parked run forward");
    assert_eq!(store.approvals("p1").await.unwrap()[0].decided_by, "admin");

    // Cancel: a running run is asked to stop; a finished one cannot be cancelled.
    assert_eq!(
        store.cancel("p1", 4).await.unwrap(),
        CancelOutcome::Requested
    );
    let asked = store
        .extend_leases("n", vec!["p1".into()], 10_000)
        .await
        .unwrap();
    assert_eq!(asked, vec!["p1".to_string()]);
    store
        .finish_execution("p1", "cancelled", Some("cancelled"), 5)
        .await
        .unwrap();
    assert!(matches!(
        store.cancel("p1", 6).await,
        Err(StoreError::State(_))
    ));
}

async fn users_sessions_and_tokens_keep_an_admin(store: Arc<dyn Store>) {
    store.create_admin("admin", "h", "boot", 1).await.unwrap();
    let user = |name: &str, role: &str| UserRecord {
        name: name.into(),
        role: role.into(),
        password_hash: "h".into(),
        created_at: 2,
    };
    store.create_user(&user("ann", "viewer")).await.unwrap();
    assert!(matches!(
        store.create_user(&user("ann", "admin")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_user("admin").await.unwrap().role, "admin");
    // The last admin cannot go.
    assert!(matches!(
        store.update_user("admin", Some("viewer"), None).await,
        Err(StoreError::State(_))
    ));
    assert!(matches!(
        store.delete_user("admin").await,
        Err(StoreError::State(_))
    ));
    store.update_user("ann", Some("admin"), None).await.unwrap();
    store
        .update_user("admin", Some("editor"), None)
        .await
        .unwrap();

    // A session lasts until it expires or the password changes.
    let session = SessionRecord {
        digest: "s1".into(),
        user_name: "ann".into(),
        csrf: "c".into(),
        created_at: 10,
        expires_at: 100,
    };
    store.create_session(&session).await.unwrap();
    let who = store.session_identity("s1", 50).await.unwrap().unwrap();
    assert_eq!(
        (who.name.as_str(), who.role.as_str(), who.csrf.as_deref()),
        ("ann", "admin", Some("c"))
    );
    assert!(store.session_identity("s1", 100).await.unwrap().is_none());
    store.update_user("ann", None, Some("h2")).await.unwrap();
    assert!(store.session_identity("s1", 50).await.unwrap().is_none());

    // Tokens: named per user; the bootstrap one is `admin-token`.
    let token = |name: &str, digest: &str| TokenRecord {
        user_name: "admin".into(),
        name: name.into(),
        digest: digest.into(),
        created_at: 3,
        last_used_at: None,
    };
    assert!(matches!(
        store.create_token(&token("admin-token", "d0")).await,
        Err(StoreError::Conflict)
    ));
    store.create_token(&token("ci", "d1")).await.unwrap();
    let names: Vec<String> = store
        .list_tokens("admin")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["admin-token", "ci"]);
    store.touch_token("d1", 7).await.unwrap();
    let who = store.token_identity("d1").await.unwrap().unwrap();
    assert_eq!((who.role.as_str(), who.last_used_at), ("editor", Some(7)));
    store.delete_token("admin", "ci").await.unwrap();
    assert!(store.token_identity("d1").await.unwrap().is_none());
    store.delete_user("admin").await.unwrap();
    assert!(store.token_identity("boot").await.unwrap().is_none());

    // The audit log keeps entries newest first.
    for (i, action) in ["POST /api/v1/keys", "DELETE /api/v1/keys/{name}"]
        .iter()
        .enumerate()
    {
        let entry = AuditRecord {
            at: 10 + i as i64,
            actor: "ann".into(),
            action: action.to_string(),
            target: "/api/v1/keys".into(),
            detail: (i == 0).then(|| "key ops".to_string()),
            status: 200,
        };
        store.audit(&entry).await.unwrap();
    }
    let log = store.list_audit(10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].action.as_str(), log[1].detail.as_deref()),
        ("DELETE /api/v1/keys/{name}", Some("key ops"))
    );
}

/// The SQLite store keeps recent deliveries in memory: after a restart it finds them again.
#[tokio::test]
async fn sqlite_finds_a_duplicate_of_a_delivery_from_before_a_restart() {
    let (store, dir) = sqlite().await;
    store
        .ingest(delivery("a", "w", "k", 10_000, 60_000))
        .await
        .unwrap();
    drop(store);
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&url, Histogram::new([1.0]))
            .await
            .unwrap(),
    );
    let dup = take(&store, delivery("b", "w", "k", 20_000, 60_000)).await;
    assert_eq!(dup.reason.as_deref(), Some("same notification as event a"));
    let other = take(&store, delivery("c", "w", "k2", 20_000, 60_000)).await;
    assert_eq!(other.outcome, "started");
}

/// A second server on the same SQLite database is refused, with the reason; once the first
/// has stopped, it may open.
#[tokio::test]
async fn sqlite_refuses_a_second_server_on_one_database() {
    let (store, dir) = sqlite().await;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let second = SqliteStore::open(&url, Histogram::new([1.0])).await;
    let Err(StoreError::Incompatible(why)) = second else {
        panic!("a second store opened on the same database");
    };
    assert!(
        why.contains("another alertflow is using the SQLite database"),
        "{why}"
    );
    drop(store);
    SqliteStore::open(&url, Histogram::new([1.0]))
        .await
        .unwrap();
}

/// Migration 0007 rebuilds the job queue: a run queued before the upgrade is still claimed
/// after it, with its claim count.
#[tokio::test]
async fn sqlite_keeps_queued_runs_across_the_job_table_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let mut before = sqlx::migrate!("migrations/sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 7)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    before.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO executions (id, workflow_id, version, status, trigger_type, created_at) VALUES ('x1', 'w', 1, 'pending', 'manual', 5);
         INSERT INTO jobs (execution_id, run_at, claims) VALUES ('x1', 5, 2);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = SqliteStore::open(&url, Histogram::new([1.0]))
        .await
        .unwrap();
    let claimed = store.claim_jobs("n", 10, 1_000, 10).await.unwrap();
    assert_eq!(claimed, vec![("x1".to_string(), 3)]);
}

fn step(id: &str, position: i64, status: &str, output: Option<&str>) -> StepRecord {
    StepRecord {
        step_id: id.into(),
        position,
        status: status.into(),
        attempts: 1,
        output: output.map(str::to_string),
        started_at: Some(2_000),
        ..Default::default()
    }
}

/// A delivery's runs (one per alert), claimed, their steps saved in one write and one at a
/// time, and ended: each part as it was written, and nothing left queued.
async fn a_delivery_runs_and_ends_as_stored(store: Arc<dyn Store>) {
    let run = |i: i64| NewExecution {
        id: format!("r{i}"),
        workflow_id: "w".into(),
        version: 3,
        trigger_type: "prometheus",
        alert_index: Some(i),
        input: None,
        alert_key: Some(format!("fp{i}")),
        lock_key: None,
        replay_of: None,
        watches_resolution: i == 1,
    };
    let delivery = NewEvent {
        body: Some(Bytes::from_static(b"{\"alerts\":[{},{}]}")),
        executions: vec![run(0), run(1)],
        ..event("e1", "k")
    };
    let taken = store.ingest(delivery).await.unwrap();
    assert_eq!(taken.executions, ["r0", "r1"]);
    for i in 0..2 {
        let (x, steps) = store.get_execution(&format!("r{i}")).await.unwrap();
        assert_eq!(
            (
                x.status.as_str(),
                x.version,
                x.event_id.as_deref(),
                x.alert_index,
                x.alert_key
            ),
            ("pending", 3, Some("e1"), Some(i), Some(format!("fp{i}")))
        );
        assert!(steps.is_empty());
    }
    assert_eq!(
        &store.execution_input("r1").await.unwrap()[..],
        b"{\"alerts\":[{},{}]}"
    );

    let mut claimed = store.claim_jobs("n", 1_000, 60_000, 10).await.unwrap();
    claimed.sort();
    assert_eq!(claimed, [("r0".to_string(), 1), ("r1".to_string(), 1)]);
    assert_eq!(store.get_execution("r0").await.unwrap().0.status, "running");

    // A step given twice in one write keeps its later state.
    let steps = [
        step("a", 0, "running", None),
        step("a", 0, "succeeded", Some("1")),
        step("b", 1, "running", None),
    ];
    store.save_steps("r0", &steps).await.unwrap();
    store
        .save_step("r0", &step("b", 1, "succeeded", Some("2")), None)
        .await
        .unwrap();
    store
        .finish_execution("r0", "succeeded", None, 3_000)
        .await
        .unwrap();

    let (x, steps) = store.get_execution("r0").await.unwrap();
    assert_eq!(
        (x.status.as_str(), x.finished_at),
        ("succeeded", Some(3_000))
    );
    let saved: Vec<_> = steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.status.as_str(), s.output.as_deref()))
        .collect();
    assert_eq!(
        saved,
        [("a", "succeeded", Some("1")), ("b", "succeeded", Some("2"))]
    );
    // Its job is gone: once every lease has run out, only the other run comes back.
    let again = store.claim_jobs("m", 100_000, 60_000, 10).await.unwrap();
    assert_eq!(again, [("r1".to_string(), 2)]);
}

async fn runs_in_progress_write_together_and_fail_alone(store: Arc<dyn Store>) {
    // Twenty runs save their steps and end at once, so their writes share commits; a save for
    // a run that does not exist fails without failing the others.
    for i in 0..20 {
        let run = manual_run(&format!("x{i:02}"));
        store.create_execution(&run, 1).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..21 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = if i == 20 {
                "ghost".into()
            } else {
                format!("x{i:02}")
            };
            let out = format!("{i}");
            let first = [
                step("a", 0, "succeeded", None),
                step("b", 1, "running", None),
            ];
            s.save_steps(&id, &first).await?;
            s.save_step(&id, &step("b", 1, "succeeded", Some(&out)), None)
                .await?;
            s.finish_execution(&id, "succeeded", None, 5_000).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let written = t.await.unwrap();
        assert_eq!(written.is_ok(), i < 20, "run {i}: {written:?}");
    }
    for i in 0..20 {
        let (x, steps) = store.get_execution(&format!("x{i:02}")).await.unwrap();
        assert_eq!(
            (x.status.as_str(), x.finished_at),
            ("succeeded", Some(5_000))
        );
        let saved: Vec<_> = steps
            .iter()
            .map(|s| (s.step_id.as_str(), s.status.as_str(), s.output.clone()))
            .collect();
        assert_eq!(
            saved,
            [
                ("a", "succeeded", None),
                ("b", "succeeded", Some(format!("{i}")))
            ]
        );
    }
    let left = store.claim_jobs("n", 100_000, 60_000, 100).await.unwrap();
    assert!(left.is_empty(), "ended runs keep no job: {left:?}");
}

/// Work queued through one node's store wakes another node LISTENing on the same database:
/// the NOTIFY is sent after the commit, not lost with it. Only the notice can wake it here
/// (no engine polls), so the wait's bound only keeps a broken build from hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_queued_work_wakes_the_other_nodes() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let other = PgStore::open(&db.url, 2).await.unwrap();
    let wake = Arc::new(tokio::sync::Notify::new());
    other.listen_for_work(wake.clone());
    // LISTEN is set up on its own task: announce until it is heard, at most for a while.
    let mut heard = false;
    for i in 0..50 {
        let delivery = NewEvent {
            executions: vec![NewExecution {
                id: format!("n{i}"),
                alert_index: None,
                ..manual_run("unused")
            }],
            ..event(&format!("e{i}"), &format!("k{i}"))
        };
        db.store.ingest(delivery).await.unwrap();
        let woken = tokio::time::timeout(Duration::from_millis(200), wake.notified());
        if woken.await.is_ok() {
            heard = true;
            break;
        }
    }
    assert!(heard, "no NOTIFY reached the other node in 50 deliveries");
    // Notices still on their way are taken, so that the next one heard is the run's end's.
    while tokio::time::timeout(Duration::from_millis(300), wake.notified())
        .await
        .is_ok()
    {}
    // A run that held a lock ends: a run of the same alert may be waiting for it, on any node.
    let locked = NewExecution {
        lock_key: Some("fp".into()),
        ..manual_run("locked")
    };
    db.store.create_execution(&locked, 1).await.unwrap();
    while tokio::time::timeout(Duration::from_millis(300), wake.notified())
        .await
        .is_ok()
    {}
    db.store
        .finish_execution("locked", "succeeded", None, 2)
        .await
        .unwrap();
    let woken = tokio::time::timeout(Duration::from_secs(10), wake.notified()).await;
    assert!(woken.is_ok(), "the end of a locked run was not announced");
    drop(other);
    db.drop_database().await;
}

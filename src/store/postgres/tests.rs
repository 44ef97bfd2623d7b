//! PostgreSQL's own tests (the suite both stores share is in store/tests.rs).

use super::*;

/// A key deleted through one node is refused by another at once, not after its cached
/// lookup expires: the deleting node's NOTIFY clears the other's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_on_one_node_is_dropped_from_the_others_cache() {
    let Some(db) = crate::store::tests::TestDb::create().await else {
        return;
    };
    let (a, b) = (
        PgStore::open(&db.url, 2).await.unwrap(),
        PgStore::open(&db.url, 2).await.unwrap(),
    );
    // Whether a's cache is cleared by a notice after b's change (which announces one).
    async fn cleared_after(a: &PgStore, change: impl std::future::Future<Output = ()>) -> bool {
        let before = a.hooks.generation();
        change.await;
        for _ in 0..100 {
            if a.hooks.generation() != before {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
    // a's listener connects in the background: b changes something until a hears it.
    let mut heard = false;
    for i in 0..20 {
        let key = KeyRecord {
            name: format!("probe{i}"),
            digest: format!("p{i}"),
            value_enc: vec![1],
            created_at: 1,
            last_used_at: None,
        };
        if cleared_after(&a, async { b.create_key(&key).await.unwrap() }).await {
            heard = true;
            break;
        }
    }
    assert!(heard, "node a never heard node b's change");
    let key = KeyRecord {
        name: "ops".into(),
        digest: "d".into(),
        value_enc: vec![1],
        created_at: 1,
        last_used_at: None,
    };
    assert!(cleared_after(&a, async { b.create_key(&key).await.unwrap() }).await);
    assert!(a.hook_lookup("d", "w").await.unwrap().key.is_some());
    assert!(a.hooks.get("d", "w").is_some(), "the lookup is cached");
    let deleted = async { b.delete_key("ops").await.unwrap() };
    assert!(cleared_after(&a, deleted).await, "no notice of the delete");
    assert!(a.hook_lookup("d", "w").await.unwrap().key.is_none());
    drop((a, b));
    db.drop_database().await;
}

/// With every connection taken, a request fails as unavailable (503 upstream) instead of
/// hanging.
#[tokio::test]
async fn an_exhausted_pool_answers_unavailable() {
    let Some(db) = crate::store::tests::TestDb::create().await else {
        return;
    };
    let store = PgStore::open(&db.url, 1).await.unwrap();
    let held = store.pool.acquire().await.unwrap();
    let err = store.list_keys().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    drop(held);
    assert!(store.list_keys().await.is_ok());
    drop(store);
    db.drop_database().await;
}

/// Runs claimed together are read together, each as `load_run` reads it alone: a split run
/// without its body (the engine reads the event's once), a manual run with its own input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_runs_read_together_are_read_as_each_alone() {
    use crate::store::tests::{event, manual_run};
    let Some(db) = crate::store::tests::TestDb::create().await else {
        return;
    };
    let store = PgStore::open(&db.url, 2).await.unwrap();
    let split = |i: i64| NewExecution {
        alert_index: Some(i),
        input: None,
        ..manual_run(&format!("s{i}"))
    };
    let delivery = NewEvent {
        body: Some(Bytes::from_static(b"{\"alerts\":[{},{}]}")),
        executions: vec![split(0), split(1)],
        ..event("e1", "k")
    };
    store.ingest(delivery).await.unwrap();
    store
        .create_execution(&manual_run("m"), 2_000)
        .await
        .unwrap();
    let claimed = store.claim_jobs("n", 3_000, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let ids: Vec<&str> = claimed.iter().map(|(id, _)| id.as_str()).collect();
    let together = store.load_new_runs(&ids).await.unwrap();
    assert_eq!(together.len(), 3);
    for run in together {
        let alone = store.load_run(&run.execution.id, true).await.unwrap();
        assert_eq!(format!("{run:?}"), format!("{alone:?}"));
        assert_eq!(run.execution.status, "running");
        let expected: &[u8] = if run.execution.id == "m" { b"{}" } else { b"" };
        assert_eq!(&run.input[..], expected, "{}", run.execution.id);
    }
    drop(store);
    db.drop_database().await;
}

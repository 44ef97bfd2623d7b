use super::*;
use prometheus_client::metrics::histogram::Histogram;

async fn store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (
        SqliteStore::open(&url, Histogram::new([1.0]))
            .await
            .unwrap(),
        dir,
    )
}

fn key(name: &str, digest: &str) -> KeyRecord {
    KeyRecord {
        name: name.into(),
        digest: digest.into(),
        value_enc: vec![1],
        created_at: 1,
        last_used_at: None,
    }
}

fn event(id: &str, dedupe: &str) -> NewEvent {
    NewEvent {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_but_fail_alone() {
    let (store, _dir) = store().await;
    let store = std::sync::Arc::new(store);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_decided_inside_the_batch() {
    let (store, _dir) = store().await;
    let store = std::sync::Arc::new(store);
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

#[tokio::test]
async fn a_schedule_fires_once_when_two_nodes_race() {
    let (store, _dir) = store().await;
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

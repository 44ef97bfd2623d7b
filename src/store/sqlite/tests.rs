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

//! The writer's hand-off to the sync of the write-ahead log: each caller answered once its
//! commit is synced, never before; operations that arrive during a sync commit together after
//! it; a failed operation undoes only its own writes; a failed sync stops writes.

use super::*;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Far longer than any step here takes; reaching it means a caller was never answered.
const STUCK: Duration = Duration::from_secs(10);

async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
    pool_with(dir, 50).await
}

/// `commands`: how many commands sqlx's channel to the connection's worker holds (50 unless set).
async fn pool_with(dir: &tempfile::TempDir, commands: usize) -> SqlitePool {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .command_buffer_size(commands);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

/// Inserts `k`; tells `ran` each time the operation runs.
async fn insert(
    w: &Writer,
    k: &str,
    ran: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<()> {
    w.write_sync(k.to_string(), move |db, k| {
        if let Some(ran) = &ran {
            let _ = ran.send(k.clone());
        }
        db.execute("INSERT INTO t (k) VALUES (?)", [k])?;
        Ok(())
    })
    .await
}

async fn keys(w: &Writer) -> Vec<String> {
    w.write_sync((), |db, _| {
        let mut stmt = db.prepare("SELECT k FROM t ORDER BY k")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    })
    .await
    .unwrap()
}

fn histogram() -> Histogram {
    Histogram::new([1.0])
}

/// One write at a time: a lost wake-up between the writer and the sync would leave one
/// unanswered, which the next write would not come to hide.
#[tokio::test]
async fn answers_writes_sent_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let syncs = Arc::new(AtomicUsize::new(0));
    let sync_wal: SyncWal = {
        let syncs = syncs.clone();
        let real = super::super::wal_sync::syncer(&dir.path().join("w.db"));
        Arc::new(move || {
            syncs.fetch_add(1, Ordering::SeqCst);
            real()
        })
    };
    let w = Writer::start(pool(&dir).await, histogram(), Some(sync_wal));
    for i in 0..200 {
        let k = format!("k{i:03}");
        tokio::time::timeout(STUCK, insert(&w, &k, None))
            .await
            .unwrap_or_else(|_| panic!("write {i} was never answered"))
            .unwrap();
    }
    assert_eq!(
        syncs.load(Ordering::SeqCst),
        200,
        "one commit and one sync per write"
    );
    assert_eq!(keys(&w).await.len(), 200);
}

/// A sync the test lets through one at a time.
fn gated() -> (SyncWal, std::sync::mpsc::Sender<()>, Arc<AtomicUsize>) {
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let syncs = Arc::new(AtomicUsize::new(0));
    let counted = syncs.clone();
    let sync: SyncWal = Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        gate.lock().unwrap().recv().map_err(std::io::Error::other)
    });
    (sync, open, syncs)
}

#[tokio::test]
async fn writes_arriving_during_a_sync_share_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, open_gate, syncs) = gated();
    let w = Writer::start(pool(&dir).await, histogram(), Some(sync));
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();

    let mut first = tokio::spawn({
        let (w, ran_tx) = (w.clone(), ran_tx.clone());
        async move { insert(&w, "a", Some(ran_tx)).await }
    });
    assert_eq!(ran.recv().await.as_deref(), Some("a"));
    // "a" is committed, its sync held. These run meanwhile, "a" again failing on the key.
    let later: Vec<_> = ["b", "a", "c"]
        .into_iter()
        .map(|k| {
            let (w, ran_tx) = (w.clone(), ran_tx.clone());
            tokio::spawn(async move { insert(&w, k, Some(ran_tx)).await })
        })
        .collect();
    let mut seen = HashSet::new();
    while seen.len() < 3 {
        seen.insert(ran.recv().await.unwrap());
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut first)
            .await
            .is_err(),
        "answered before its sync ended"
    );
    open_gate.send(()).unwrap();
    tokio::time::timeout(STUCK, first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    open_gate.send(()).unwrap();
    let mut results = Vec::new();
    for h in later {
        results.push(tokio::time::timeout(STUCK, h).await.unwrap().unwrap());
    }
    assert!(results[0].is_ok(), "b: {:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::Conflict)),
        "a again: {:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "c: {:?}", results[2]);
    assert_eq!(
        syncs.load(Ordering::SeqCst),
        2,
        "b, a and c shared one commit"
    );
    // The read goes through the writer too: its commit's sync is let through in advance.
    open_gate.send(()).unwrap();
    assert_eq!(keys(&w).await, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_failed_sync_fails_its_callers_and_stops_writes() {
    let dir = tempfile::tempdir().unwrap();
    // Only the first sync fails: the second write must fail because writes stopped, not
    // because its own sync failed too.
    let failed = std::sync::atomic::AtomicBool::new(false);
    let fail: SyncWal = Arc::new(move || {
        if failed.swap(true, Ordering::SeqCst) {
            Ok(())
        } else {
            Err(std::io::Error::other("disk gone"))
        }
    });
    let w = Writer::start(pool(&dir).await, histogram(), Some(fail));
    for k in ["a", "b"] {
        match tokio::time::timeout(STUCK, insert(&w, k, None))
            .await
            .unwrap()
        {
            Err(StoreError::Unavailable(m)) => {
                assert!(
                    m.contains("could not be synced") && m.contains("disk gone"),
                    "{m}"
                )
            }
            other => panic!("{k}: {other:?}"),
        }
    }
}

/// Hundreds of batches join one transaction while a sync is held, with sqlx's channel to the
/// connection's worker at one command: lending the handle again for each batch can deadlock
/// sqlx there (see `WriterConn`), leaving the writes unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_batches_in_one_transaction_leave_sqlx_unblocked() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, open_gate, syncs) = gated();
    let w = Writer::start(pool_with(&dir, 1).await, histogram(), Some(sync));
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
    let mut writes = Vec::new();
    for i in 0..300 {
        let (w, ran_tx) = (w.clone(), ran_tx.clone());
        let k = format!("k{i:03}");
        writes.push(tokio::spawn(
            async move { insert(&w, &k, Some(ran_tx)).await },
        ));
        // Run before the next is sent: a batch of its own.
        tokio::time::timeout(STUCK, ran.recv())
            .await
            .unwrap_or_else(|_| panic!("write {i} never ran"));
    }
    open_gate.send(()).unwrap();
    open_gate.send(()).unwrap();
    for (i, h) in writes.into_iter().enumerate() {
        tokio::time::timeout(STUCK, h)
            .await
            .unwrap_or_else(|_| panic!("write {i} was never answered"))
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        syncs.load(Ordering::SeqCst),
        2,
        "the first write's commit, then the rest's"
    );
    // The deadlock needs a lend per batch, and a lost race each time; the lends are counted.
    assert_eq!(w.lends(), 1, "the handle stays lent across batches");
    open_gate.send(()).unwrap();
    assert_eq!(keys(&w).await.len(), 300);
}

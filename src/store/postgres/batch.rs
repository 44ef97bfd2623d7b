//! Writes that arrive together share one transaction. PostgreSQL spends most of its CPU on
//! per-statement and per-commit work when each write is its own transaction (bench/ANALYSIS.md,
//! rounds 11 and 12), so a task gathers what is waiting while earlier batches are written and
//! hands it to a `BatchWrite`, which writes the whole batch in a few statements and one COMMIT,
//! as SQLite's writer shares one commit among concurrent writes.

use super::*;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Writes in one transaction at most: bounds the statements' arrays, and what one failed
/// transaction sends back to be written again one by one.
const MAX_BATCH: usize = 64;

/// Transactions in flight at once: while one waits for its commit to be flushed, the next
/// gathers what arrived meanwhile and runs.
const LANES: usize = 3;

/// Writes a batch of items in one transaction: all of them, or none and an error.
#[async_trait]
pub(super) trait BatchWrite: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Out: Send + 'static;
    async fn write(
        &self,
        pool: &PgPool,
        items: &[&Self::Item],
    ) -> std::result::Result<Vec<Self::Out>, sqlx::Error>;
}

pub(super) struct Batcher<W: BatchWrite> {
    queue: mpsc::Sender<Pending<W>>,
}

struct Pending<W: BatchWrite> {
    item: W::Item,
    answer: oneshot::Sender<Result<W::Out>>,
}

impl<W: BatchWrite> Batcher<W> {
    /// The task ends with the store (when the queue's sender is dropped).
    pub(super) fn start(pool: PgPool, writer: W) -> Self {
        let (queue, waiting) = mpsc::channel(1024);
        tokio::spawn(gather(pool, Arc::new(writer), waiting));
        Batcher { queue }
    }

    /// Writes the item with whatever else is waiting; returns once it is committed.
    pub(super) async fn write(&self, item: W::Item) -> Result<W::Out> {
        let stopped = || StoreError::Unavailable("the store is shutting down".into());
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { item, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Takes whatever is waiting, up to `MAX_BATCH`, whenever a lane is free.
async fn gather<W: BatchWrite>(
    pool: PgPool,
    writer: Arc<W>,
    mut waiting: mpsc::Receiver<Pending<W>>,
) {
    let lanes = Arc::new(Semaphore::new(LANES));
    loop {
        let Ok(lane) = lanes.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = waiting.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (pool, writer) = (pool.clone(), writer.clone());
        tokio::spawn(async move {
            write(&pool, &*writer, batch).await;
            drop(lane);
        });
    }
}

async fn write<W: BatchWrite>(pool: &PgPool, writer: &W, batch: Vec<Pending<W>>) {
    let items: Vec<&W::Item> = batch.iter().map(|p| &p.item).collect();
    match writer.write(pool, &items).await {
        Ok(outs) => {
            for (pending, out) in batch.into_iter().zip(outs) {
                let _ = pending.answer.send(Ok(out));
            }
        }
        // A statement failed: one item's fault (a delivery for a workflow deleted meanwhile,
        // say) must not fail the others, so each is written again on its own.
        Err(sqlx::Error::Database(_)) if batch.len() > 1 => {
            for pending in batch {
                let alone = writer.write(pool, &[&pending.item]).await;
                let answer = alone.map(|mut o| o.remove(0)).map_err(StoreError::from);
                let _ = pending.answer.send(answer);
            }
        }
        // The database is out of reach: every writer gets the error (a delivery answers 503,
        // and Alertmanager sends it again).
        Err(e) => {
            let e = StoreError::from(e);
            for pending in batch {
                let _ = pending.answer.send(Err(e.clone()));
            }
        }
    }
}

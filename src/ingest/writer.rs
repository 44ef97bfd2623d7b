//! Group commit: deliveries that arrive together are written in one transaction, so the cost of
//! a durable commit (an fsync) is shared instead of paid by each request.

use crate::metrics::Metrics;
use crate::store::{Ingested, NewEvent, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};

const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Ingested, StoreError>>;

#[derive(Clone)]
pub struct IngestWriter {
    tx: mpsc::Sender<(NewEvent, Reply)>,
}

impl IngestWriter {
    /// Starts the writer task. It ends when every `IngestWriter` clone is dropped.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>, wake: Arc<Notify>) -> IngestWriter {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_loop(rx, store, metrics, wake));
        IngestWriter { tx }
    }

    /// Returns once the event (and its executions) is committed.
    pub async fn submit(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| StoreError::Unavailable("shutting down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }
}

async fn write_loop(
    mut rx: mpsc::Receiver<(NewEvent, Reply)>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
        metrics.ingest_batch.observe(events.len() as f64);
        match store.ingest(&events).await {
            Ok(results) => {
                if results.iter().any(|r| !r.executions.is_empty()) {
                    wake.notify_waiters();
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = events.len(), "could not store deliveries");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

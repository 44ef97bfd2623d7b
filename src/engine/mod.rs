//! The engine: a dispatcher claims due jobs from the database queue in batches and runs each
//! execution in its own task, up to `--workers` at once. Each step's result is committed before
//! the next starts, so a crash loses at most the step that was running, which runs again
//! (attempt + 1) when the job comes back: at once on this node's restart, or when its lease
//! runs out on another node.

pub mod context;
mod foreach;
mod run;
pub mod schedule;
mod step;
mod suspend;

pub use suspend::{approval_link, LinkClaims, LinkDecision};

use crate::actions::{Clients, Registry};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::metrics::Metrics;
pub use crate::plans::Plan;
use crate::plans::Plans;
use crate::store::{RunState, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A job claimed this often without finishing is given up (a step that crashes the process).
const MAX_CLAIMS: i64 = 10;
/// The dispatcher looks for due jobs at least this often, besides being woken by new work.
const POLL: Duration = Duration::from_millis(1000);

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub clients: Clients,
    pub metrics: Arc<Metrics>,
    pub node_id: String,
    pub lease: Duration,
    /// Signalled when executions are queued or a running one ends.
    pub wake: Arc<Notify>,
    pub plans: Arc<Plans>,
    /// Executions running on this node, whose leases the heartbeat keeps, each with the token
    /// that cancels it.
    pub running: Mutex<HashMap<String, CancellationToken>>,
    pub clock: Clock,
    /// Parsed trigger bodies by event, so the runs of one delivery (`split: per_alert`, up to
    /// thousands) parse and convert its body once, not once each.
    pub triggers: Mutex<HashMap<String, Arc<context::Trigger>>>,
    /// Held while a body is loaded into `triggers`, so it is loaded once.
    pub trigger_loading: tokio::sync::Mutex<()>,
    pub master: MasterKey,
    /// The base of approval links.
    pub public_base: String,
    /// One permit per run this node may have going at once: `workers` of them (`--workers`).
    pub slots: Arc<Semaphore>,
    pub workers: usize,
}

impl Engine {
    /// Starts the dispatcher and the lease heartbeat; the handle ends after shutdown, once
    /// running executions are done.
    pub fn start(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(heartbeat(self.clone(), shutdown.clone()));
        tokio::spawn(schedule::run(self.clone(), shutdown.clone()));
        tokio::spawn(dispatch(self.clone(), shutdown))
    }

    fn running_set(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops a run executing on this node at once; false when it runs elsewhere or not at all.
    pub fn cancel_local(&self, execution_id: &str) -> bool {
        match self.running_set().get(execution_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// A worker for a run that the ingest path hands over (see [`Engine::adopt`]), while
    /// most workers are free. Handing over saves a run its claim and its load, which is most
    /// of its latency when the node is not busy; under load, the dispatcher's claims start
    /// runs in batches whose writes share commits, which does more per second.
    pub fn try_reserve(&self) -> Option<OwnedSemaphorePermit> {
        if self.slots.available_permits() * 2 < self.workers {
            return None;
        }
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Runs an execution that ingest stored already leased to this node, from the state it
    /// has in hand: no claim, no load.
    pub fn adopt(self: &Arc<Self>, run: RunState, slot: OwnedSemaphorePermit) {
        let id = run.execution.id.clone();
        tokio::spawn(run_claimed(self.clone(), id, 1, Some(run), slot));
    }

    /// A workflow version, parsed once.
    async fn workflow(&self, id: &str, version: i64) -> Result<Arc<Plan>, StoreError> {
        self.plans.load(self.store.as_ref(), id, version).await
    }
}

async fn dispatch(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let slots = engine.slots.clone();
    let lease_ms = engine.lease.as_millis() as i64;
    while !*shutdown.borrow() {
        let free = slots.available_permits();
        if free == 0 {
            // Wait for a running execution to end.
            tokio::select! {
                _ = engine.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        match engine
            .store
            .claim_jobs(&engine.node_id, engine.clock.now_ms(), lease_ms, free)
            .await
        {
            Ok(jobs) if !jobs.is_empty() => {
                let mut loaded = load_new_runs(&engine, &jobs).await;
                for (id, claims) in jobs {
                    let run = loaded.remove(&id);
                    // Only this task takes permits, and `free` were free: this does not wait.
                    let slot = slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore is never closed");
                    tokio::spawn(run_claimed(engine.clone(), id, claims, run, slot));
                }
            }
            Ok(_) => {
                tokio::select! {
                    _ = engine.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim jobs");
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    // Let running executions finish their current step.
    let _ = slots.acquire_many(engine.workers as u32).await;
}

/// The runs claimed for the first time, read together where the store does that; a run left
/// out, or all of them when the read fails, loads itself.
async fn load_new_runs(engine: &Engine, jobs: &[(String, i64)]) -> HashMap<String, RunState> {
    let new: Vec<&str> = jobs
        .iter()
        .filter(|(_, claims)| *claims == 1)
        .map(|(id, _)| id.as_str())
        .collect();
    if new.is_empty() {
        return HashMap::new();
    }
    match engine.store.load_new_runs(&new).await {
        Ok(runs) => runs
            .into_iter()
            .map(|r| (r.execution.id.clone(), r))
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the claimed runs together");
            HashMap::new()
        }
    }
}

/// Runs one claimed execution (its state loaded here unless given), then frees its slot and
/// tells the dispatcher.
async fn run_claimed(
    engine: Arc<Engine>,
    id: String,
    claims: i64,
    loaded: Option<RunState>,
    slot: OwnedSemaphorePermit,
) {
    let cancel = CancellationToken::new();
    engine.running_set().insert(id.clone(), cancel.clone());
    // In its own task, so that a panic in an action ends the run, not this bookkeeping.
    let (e, task_id) = (engine.clone(), id.clone());
    let outcome =
        tokio::spawn(async move { run::execute(&e, &task_id, claims, loaded, cancel).await }).await;
    match outcome {
        Ok(Ok(())) => {}
        // No longer heartbeated, the job's lease runs out and the run is claimed again.
        Ok(Err(err)) => {
            tracing::warn!(execution = %id, error = %err, "execution paused until its lease runs out")
        }
        Err(panic) => tracing::error!(execution = %id, error = %panic, "execution task panicked"),
    }
    engine.running_set().remove(&id);
    drop(slot);
    engine.wake.notify_one();
}

/// Extends the leases of the executions running here, so only a stopped node, or a run that
/// stopped on an error, gives its job back.
async fn heartbeat(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(engine.lease / 3) => {}
            _ = shutdown.changed() => return,
        }
        let running: Vec<String> = engine.running_set().keys().cloned().collect();
        if running.is_empty() {
            continue;
        }
        let until = engine.clock.now_ms() + engine.lease.as_millis() as i64;
        match engine
            .store
            .extend_leases(&engine.node_id, running, until)
            .await
        {
            // Cancels asked for on another node reach this one here.
            Ok(cancelled) => {
                for id in cancelled {
                    engine.cancel_local(&id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot extend leases"),
        }
    }
}

//! Handing a delivery's run to this node's engine at ingest, stored already claimed, so that
//! it starts without a claim commit and a load (`NewEvent::lease`).

use crate::engine::Engine;
use crate::store::{ExecutionRecord, Lease, NewEvent, RunState};
use crate::AppState;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// The run a delivery starts, for this node's engine to start at once (see `Engine::adopt`):
/// when the delivery starts exactly one run that no other run must go before (`split` and
/// `concurrency: per_alert` are left to the claim), and a worker is free. Sets the event's
/// lease accordingly. In a cluster the node that took the delivery runs it; deliveries are
/// spread over the nodes by whatever spreads the webhooks, and a busy node leaves its runs to
/// the claim.
pub(super) fn prepare(
    state: &AppState,
    event: &mut NewEvent,
) -> Option<(Arc<Engine>, RunState, OwnedSemaphorePermit)> {
    let engine = state.engine.as_ref()?;
    let [ex] = event.executions.as_slice() else {
        return None;
    };
    if ex.alert_index.is_some() || ex.lock_key.is_some() {
        return None;
    }
    let slot = engine.try_reserve()?;
    let now = event.received_at;
    let run = RunState {
        execution: ExecutionRecord {
            id: ex.id.clone(),
            workflow_id: ex.workflow_id.clone(),
            version: ex.version,
            status: "running".into(),
            trigger_type: ex.trigger_type.into(),
            event_id: Some(event.id.clone()),
            alert_index: None,
            error: None,
            alert_key: ex.alert_key.clone(),
            // As `ingest` marks it: a resolved notification's own run knows it is resolved.
            resolved_at: ex
                .alert_key
                .as_ref()
                .filter(|k| ex.watches_resolution && event.resolved_keys.contains(k))
                .map(|_| now),
            cancel_requested: false,
            replay_of: None,
            created_at: now,
            started_at: Some(now),
            finished_at: None,
        },
        input: event.body.clone().unwrap_or_default(),
        steps: vec![],
    };
    event.lease = Some(Lease {
        node: engine.node_id.clone(),
        until: engine.clock.now_ms() + engine.lease.as_millis() as i64,
    });
    Some((engine.clone(), run, slot))
}

//! The scheduler: fires schedule triggers. Each fire moves the schedule's next time with a
//! compare-and-set in the same transaction that queues the run, so with several nodes
//! polling one database each time fires once. A node that was down fires a missed time once,
//! then carries on from now.

use super::Engine;
use crate::store::{DueSchedule, NewExecution};
use alertflow_domain::schedule::Schedule;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const TICK: Duration = Duration::from_millis(500);

pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return,
        }
        let now = engine.clock.now_ms();
        let due = match engine.store.due_schedules(now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read schedules");
                continue;
            }
        };
        for d in due {
            if let Err(e) = fire(&engine, &d, now).await {
                tracing::warn!(workflow = %d.workflow_id, error = %e, "schedule did not fire");
            }
        }
    }
}

async fn fire(engine: &Engine, due: &DueSchedule, now: i64) -> anyhow::Result<()> {
    let plan = engine.workflow(&due.workflow_id, due.version).await?;
    let schedule =
        Schedule::of(&plan.wf.trigger).map_err(|(path, e)| anyhow::anyhow!("{path}: {e}"))?;
    let now_utc = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
    let next = schedule
        .next_after(now_utc)
        .map(|t| t.timestamp_millis())
        // A cron that never fires again (a past year): park it far away.
        .unwrap_or(i64::MAX / 2);
    let input = serde_json::json!({
        "scheduled_at": crate::rfc3339(due.next_fire_at),
        "fired_at": crate::rfc3339(now),
    });
    let execution = NewExecution {
        id: crate::ingest::new_id(),
        workflow_id: due.workflow_id.clone(),
        version: due.version,
        trigger_type: "schedule",
        alert_index: None,
        input: Some(input.to_string().into()),
        alert_key: None,
        lock_key: None,
        replay_of: None,
        watches_resolution: false,
    };
    if engine
        .store
        .fire_schedule(due, next, &execution, now)
        .await?
    {
        tracing::info!(workflow = %due.workflow_id, execution = %execution.id, "schedule fired");
        engine.wake.notify_one();
    }
    Ok(())
}

/// The next `n` fire times of a schedule trigger, after `now`.
pub fn next_fires(
    trigger: &alertflow_domain::workflow::Trigger,
    now: i64,
    n: usize,
) -> Vec<String> {
    let Ok(schedule) = Schedule::of(trigger) else {
        return vec![];
    };
    let now = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
    schedule
        .next_n(now, n)
        .into_iter()
        .map(|t| crate::rfc3339(t.timestamp_millis()))
        .collect()
}

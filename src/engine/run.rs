//! One execution, from its stored state to its end, or to a pause (a wait, an approval, a
//! retry's backoff) that gives its worker back.

use super::context::{self, record_in_context};
use super::step::{self, StepOutcome, StepRun};
use super::{Engine, MAX_CLAIMS};
use crate::store::{RunState, StepRecord, StoreError};
use alertflow_domain::execution::{next, ExecutionStatus, Next, StepStatus};
use alertflow_domain::workflow::{OnError, Workflow};
use serde_json::json;
use std::str::FromStr;
use tokio_util::sync::CancellationToken;

pub async fn execute(
    engine: &Engine,
    id: &str,
    claims: i64,
    loaded: Option<RunState>,
    cancel: CancellationToken,
) -> Result<(), StoreError> {
    let run = match loaded {
        Some(run) => run,
        None => engine.store.load_run(id, claims == 1).await?,
    };
    let status =
        ExecutionStatus::from_str(&run.execution.status).unwrap_or(ExecutionStatus::Pending);
    if status.is_final() {
        let now = engine.clock.now_ms();
        return engine
            .store
            .finish_execution(id, status.as_str(), run.execution.error.as_deref(), now)
            .await;
    }
    let mut records: Vec<StepRecord> = run.steps.clone();
    if run.execution.cancel_requested {
        return end_early(
            engine,
            id,
            &mut records,
            ExecutionStatus::Cancelled,
            "cancelled".into(),
        )
        .await;
    }
    if claims > MAX_CLAIMS {
        let error = format!(
            "given up after {} claims: the run keeps stopping its worker",
            claims - 1
        );
        return end_early(engine, id, &mut records, ExecutionStatus::Failed, error).await;
    }
    let plan = engine
        .workflow(&run.execution.workflow_id, run.execution.version)
        .await?;
    let wf = &plan.wf;
    let started_at = run
        .execution
        .started_at
        .unwrap_or_else(|| engine.clock.now_ms());
    let deadline = wf
        .timeout
        .map(|t| started_at + t.as_std().as_millis() as i64);
    let (mut ctx, redactor, trigger) = context::initial(engine, &run, &plan).await?;

    let mut records: Vec<StepRecord> = wf
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            records
                .iter()
                .find(|r| r.step_id == s.id)
                .cloned()
                .unwrap_or_else(|| StepRecord {
                    step_id: s.id.clone(),
                    position: i as i64,
                    status: "pending".into(),
                    ..Default::default()
                })
        })
        .collect();
    let mut statuses: Vec<StepStatus> = records
        .iter()
        .map(|r| match StepStatus::from_str(&r.status) {
            // It was running when the last worker stopped: run it again.
            Ok(StepStatus::Running) | Err(_) => StepStatus::Pending,
            Ok(s) => s,
        })
        .collect();
    for (rec, st) in records.iter().zip(&statuses) {
        if st.is_final() {
            record_in_context(&mut ctx, rec);
        }
    }

    let sr = StepRun {
        engine,
        execution: &run.execution,
        redactor: &redactor,
        trigger: &trigger,
        cancel: &cancel,
        deadline,
        deferred: Default::default(),
    };
    loop {
        if deadline.is_some_and(|d| engine.clock.now_ms() >= d) {
            return sr
                .with_deferred(timed_out(engine, id, wf, &mut records))
                .await;
        }
        match next(wf, &statuses) {
            Next::Finish(status) => {
                let error = failure_summary(wf, &records, status);
                return sr.with_deferred(finish(engine, id, status, error)).await;
            }
            Next::Skip(i, reason) => {
                let rec = &mut records[i];
                rec.status = StepStatus::Skipped.as_str().into();
                rec.output = Some(json!({ "reason": reason }).to_string());
                rec.finished_at = Some(engine.clock.now_ms());
                sr.save(rec).await?;
                statuses[i] = StepStatus::Skipped;
                record_in_context(&mut ctx, rec);
            }
            Next::Run(i) => match step::run(&sr, &wf.steps[i], &mut records[i], &mut ctx).await? {
                StepOutcome::Done(status) => {
                    statuses[i] = status;
                    record_in_context(&mut ctx, &records[i]);
                    let pure_next =
                        matches!(next(wf, &statuses), Next::Run(j) if sr.is_pure(&wf.steps[j]));
                    if pure_next && !sr.is_pure(&wf.steps[i]) {
                        sr.flush().await?;
                    }
                }
                StepOutcome::Park(until) => {
                    let until = deadline.map_or(until, |d| d.min(until));
                    return sr.with_deferred(engine.store.park(id, until)).await;
                }
                StepOutcome::Cancelled(reason) => {
                    let end =
                        end_early(engine, id, &mut records, ExecutionStatus::Cancelled, reason);
                    return sr.with_deferred(end).await;
                }
                StepOutcome::TimedOut => {
                    return sr
                        .with_deferred(timed_out(engine, id, wf, &mut records))
                        .await
                }
            },
        }
    }
}

async fn timed_out(
    engine: &Engine,
    id: &str,
    wf: &Workflow,
    records: &mut [StepRecord],
) -> Result<(), StoreError> {
    let limit = wf.timeout.map(|t| t.to_string()).unwrap_or_default();
    let reason = format!("the run's timeout of {limit} passed");
    end_early(engine, id, records, ExecutionStatus::TimedOut, reason).await
}

/// Ends a run before its steps did: what had not finished is cancelled.
async fn end_early(
    engine: &Engine,
    id: &str,
    records: &mut [StepRecord],
    status: ExecutionStatus,
    reason: String,
) -> Result<(), StoreError> {
    let now = engine.clock.now_ms();
    for rec in records.iter_mut() {
        let st = StepStatus::from_str(&rec.status).unwrap_or(StepStatus::Pending);
        if !st.is_final() {
            rec.status = StepStatus::Cancelled.as_str().into();
            rec.error.get_or_insert_with(|| reason.clone());
            rec.finished_at = Some(now);
            engine.store.save_step(id, rec, None).await?;
        }
    }
    finish(engine, id, status, Some(reason)).await
}

async fn finish(
    engine: &Engine,
    id: &str,
    status: ExecutionStatus,
    error: Option<String>,
) -> Result<(), StoreError> {
    engine
        .store
        .finish_execution(id, status.as_str(), error.as_deref(), engine.clock.now_ms())
        .await?;
    engine.metrics.execution_finished(status.as_str());
    Ok(())
}

fn failure_summary(
    wf: &Workflow,
    records: &[StepRecord],
    status: ExecutionStatus,
) -> Option<String> {
    if status != ExecutionStatus::Failed {
        return None;
    }
    wf.steps
        .iter()
        .zip(records)
        .find(|(s, r)| r.status == "failed" && s.on_error == OnError::Fail)
        .map(|(s, r)| {
            format!(
                "step {:?} failed: {}",
                s.id,
                r.error.as_deref().unwrap_or("")
            )
        })
}

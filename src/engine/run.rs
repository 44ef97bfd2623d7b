//! One execution, from its stored state to its end.

use super::{Engine, MAX_CLAIMS};
use crate::actions::{ActionContext, ActionError};
use crate::now_ms;
use crate::store::{stored_json, RunState, StepRecord, StoreError};
use alertflow_domain::execution::{next, ExecutionStatus, Next, StepStatus};
use alertflow_domain::template::{eval_condition, render_value};
use alertflow_domain::workflow::{Step, Workflow};
use serde_json::{json, Value};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// A step without its own `timeout` gets this long for all its attempts.
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);

pub async fn execute(engine: &Engine, id: &str, claims: i64) -> Result<(), StoreError> {
    let run = engine.store.load_run(id, claims == 1).await?;
    let status =
        ExecutionStatus::from_str(&run.execution.status).unwrap_or(ExecutionStatus::Pending);
    if status.is_final() {
        return engine
            .store
            .finish_execution(
                id,
                status.as_str(),
                run.execution.error.as_deref(),
                now_ms(),
            )
            .await;
    }
    if claims > MAX_CLAIMS {
        let error = format!(
            "given up after {} claims: the run keeps stopping its worker",
            claims - 1
        );
        return finish(engine, id, ExecutionStatus::Failed, Some(error)).await;
    }
    let wf = engine
        .workflow(&run.execution.workflow_id, run.execution.version)
        .await?;
    let wf = wf.as_ref();

    let mut ctx = initial_context(&run, wf);
    let mut records: Vec<StepRecord> = wf
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            run.steps
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
            Ok(StepStatus::Running | StepStatus::Waiting) | Err(_) => StepStatus::Pending,
            Ok(s) => s,
        })
        .collect();
    for (rec, st) in records.iter().zip(&statuses) {
        if st.is_final() {
            record_in_context(&mut ctx, rec);
        }
    }

    loop {
        match next(wf, &statuses) {
            Next::Finish(status) => {
                let error = failure_summary(wf, &records, status);
                return finish(engine, id, status, error).await;
            }
            Next::Skip(i, reason) => {
                let rec = &mut records[i];
                rec.status = StepStatus::Skipped.as_str().into();
                rec.output = Some(json!({ "reason": reason }).to_string());
                rec.finished_at = Some(now_ms());
                engine.store.save_step(id, rec).await?;
                statuses[i] = StepStatus::Skipped;
                record_in_context(&mut ctx, rec);
            }
            Next::Run(i) => {
                let status = run_step(engine, id, &wf.steps[i], &mut records[i], &ctx).await?;
                statuses[i] = status;
                record_in_context(&mut ctx, &records[i]);
            }
        }
    }
}

async fn finish(
    engine: &Engine,
    id: &str,
    status: ExecutionStatus,
    error: Option<String>,
) -> Result<(), StoreError> {
    engine
        .store
        .finish_execution(id, status.as_str(), error.as_deref(), now_ms())
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
        .find(|(s, r)| {
            r.status == "failed" && s.on_error == alertflow_domain::workflow::OnError::Fail
        })
        .map(|(s, r)| {
            format!(
                "step {:?} failed: {}",
                s.id,
                r.error.as_deref().unwrap_or("")
            )
        })
}

/// The template context: `trigger`, `alert`, `execution`, and `steps` as they finish.
fn initial_context(run: &RunState, wf: &Workflow) -> Value {
    let trigger: Value = if run.input.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&run.input).unwrap_or(Value::Null)
    };
    let ex = &run.execution;
    let mut ctx = json!({
        "execution": {
            "id": ex.id,
            "workflow": wf.name.as_str(),
            "version": ex.version,
            "started_at": crate::rfc3339(ex.started_at.unwrap_or_else(now_ms)),
        },
        "steps": {},
    });
    if let Some(i) = ex.alert_index {
        ctx["alert"] = trigger["alerts"][i as usize].clone();
    }
    ctx["trigger"] = trigger;
    ctx
}

fn record_in_context(ctx: &mut Value, rec: &StepRecord) {
    ctx["steps"][&rec.step_id] = json!({
        "status": rec.status,
        "output": stored_json(&rec.output),
        "error": rec.error,
    });
}

async fn run_step(
    engine: &Engine,
    execution_id: &str,
    step: &Step,
    rec: &mut StepRecord,
    ctx: &Value,
) -> Result<StepStatus, StoreError> {
    let started = Instant::now();
    rec.started_at = Some(now_ms());
    rec.error = None;
    rec.output = None;
    let fail_with = |rec: &mut StepRecord, message: String| {
        rec.status = StepStatus::Failed.as_str().into();
        rec.error = Some(message);
        rec.finished_at = Some(now_ms());
    };

    if let Some(cond) = &step.condition {
        match eval_condition(cond, ctx, "if") {
            Ok(true) => {}
            Ok(false) => {
                rec.status = StepStatus::Skipped.as_str().into();
                rec.output = Some(json!({"reason": "if is false"}).to_string());
                rec.finished_at = Some(now_ms());
                engine.store.save_step(execution_id, rec).await?;
                return Ok(StepStatus::Skipped);
            }
            Err(e) => {
                fail_with(rec, format!("step {:?}: {e}", step.id));
                engine.store.save_step(execution_id, rec).await?;
                return Ok(StepStatus::Failed);
            }
        }
    }
    let input = match render_value(&step.with, ctx, "with") {
        Ok(v) if v.is_null() => json!({}),
        Ok(v) => v,
        Err(e) => {
            fail_with(rec, format!("step {:?}: {e}", step.id));
            engine.store.save_step(execution_id, rec).await?;
            return Ok(StepStatus::Failed);
        }
    };
    rec.input = Some(input.to_string());
    let Some(action) = engine.registry.get(&step.uses).cloned() else {
        fail_with(
            rec,
            format!("step {:?}: unknown action {:?}", step.id, step.uses),
        );
        engine.store.save_step(execution_id, rec).await?;
        return Ok(StepStatus::Failed);
    };

    let max_attempts = step.retry.as_ref().map(|r| r.attempts).unwrap_or(1) as i64;
    let deadline = started
        + step
            .timeout
            .map(|t| t.as_std())
            .unwrap_or(DEFAULT_STEP_TIMEOUT);
    let first_attempt = rec.attempts;
    let result = loop {
        rec.attempts += 1;
        rec.status = StepStatus::Running.as_str().into();
        // Committed before an action with effects runs, so that a crash from here on shows as
        // a running step and the rerun counts as another attempt. Pure actions need not wait.
        if !action.is_pure() {
            engine.store.save_step(execution_id, rec).await?;
        }
        let actx = ActionContext {
            clients: &engine.clients,
            scope: ctx,
        };
        let attempt =
            tokio::time::timeout_at(deadline.into(), action.run(input.clone(), &actx)).await;
        let result = attempt.unwrap_or_else(|_| {
            Err(ActionError::permanent(format!(
                "timed out after {}",
                humantime_secs(deadline.duration_since(started))
            )))
        });
        match result {
            Err(e) if e.retryable && rec.attempts - first_attempt < max_attempts => {
                let delay = backoff(step, (rec.attempts - first_attempt) as u32);
                if Instant::now() + delay >= deadline {
                    break Err(e);
                }
                rec.error = Some(e.message.clone());
                tokio::time::sleep(delay).await;
            }
            other => break other,
        }
    };
    let status = match result {
        Ok(output) => {
            rec.status = StepStatus::Succeeded.as_str().into();
            rec.output = Some(output.to_string());
            rec.error = None;
            StepStatus::Succeeded
        }
        Err(e) => {
            rec.status = StepStatus::Failed.as_str().into();
            rec.output = e.output.map(|o| o.to_string());
            rec.error = Some(e.message);
            StepStatus::Failed
        }
    };
    rec.finished_at = Some(now_ms());
    engine.store.save_step(execution_id, rec).await?;
    engine
        .metrics
        .step(&step.uses, status.as_str(), started.elapsed().as_secs_f64());
    Ok(status)
}

/// Exponential backoff from `retry.backoff`, capped by `retry.max_backoff`, with jitter so
/// that runs failing together do not retry together.
fn backoff(step: &Step, attempt: u32) -> Duration {
    let Some(retry) = &step.retry else {
        return Duration::ZERO;
    };
    let base = retry.backoff.as_std();
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let capped = retry
        .max_backoff
        .map(|m| exp.min(m.as_std()))
        .unwrap_or(exp);
    let jitter = rand::random::<f64>() * 0.2 + 0.9;
    capped.mul_f64(jitter)
}

fn humantime_secs(d: Duration) -> String {
    alertflow_domain::Duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

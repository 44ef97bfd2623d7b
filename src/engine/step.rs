//! One step: its `if`, its input, its attempts with backoff, its `remember`.
//!
//! A retry's backoff does not hold a worker: the step is left `waiting` with the attempt's
//! error, the run is parked until the backoff ends, and the next claim carries on here.

use super::context::{fingerprint, Redactor, Trigger};
use super::{foreach, suspend, Engine};
use crate::actions::{ActionContext, ActionError};
use crate::store::{ExecutionRecord, Remember, StepRecord, StoreError};
use alertflow_domain::execution::StepStatus;
use alertflow_domain::template::{condition_in_scope, render_in_scope, TemplateError};
use alertflow_domain::workflow::Step;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A step without its own `timeout` gets this long for all its attempts.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// What a run needs to run one of its steps.
pub struct StepRun<'a> {
    pub engine: &'a Engine,
    pub execution: &'a ExecutionRecord,
    pub redactor: &'a Redactor,
    pub trigger: &'a Trigger,
    pub cancel: &'a CancellationToken,
    /// The run's own deadline (`timeout` of the workflow), in clock milliseconds.
    pub deadline: Option<i64>,
    /// Step results not committed yet: they go with the run's next write (the next step's
    /// start, a skip, a park or the end), into the same group commit, instead of waiting for a
    /// commit of their own. A crash before then means the step runs again, as a crash during
    /// it would; the run loop commits a step with effects at once when a pure step (whose
    /// start writes nothing) comes next, so that window stays that short.
    pub deferred: std::sync::Mutex<Vec<StepRecord>>,
}

impl StepRun<'_> {
    pub fn now(&self) -> i64 {
        self.engine.clock.now_ms()
    }

    /// When this step's attempts must end: its own timeout from its start, or the run's.
    pub fn step_deadline(&self, step: &Step, rec: &StepRecord) -> (i64, bool) {
        let timeout = step
            .timeout
            .map(|t| t.as_std())
            .unwrap_or(DEFAULT_STEP_TIMEOUT);
        let own = rec.started_at.unwrap_or_else(|| self.now()) + timeout.as_millis() as i64;
        match self.deadline {
            Some(run) if run < own => (run, true),
            _ => (own, false),
        }
    }

    /// Renders templates in `value` with `ctx` and the run's trigger.
    pub fn render(&self, value: &Value, ctx: &Value, field: &str) -> Result<Value, TemplateError> {
        render_in_scope(value, &self.trigger.scope(ctx), field)
    }

    pub fn condition(&self, src: &str, ctx: &Value, field: &str) -> Result<bool, TemplateError> {
        condition_in_scope(src, &self.trigger.scope(ctx), field)
    }

    /// Commits what was deferred, now.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.with_deferred(async { Ok(()) }).await
    }

    /// Whether a step's action has no effects outside the run (its start is not committed).
    pub fn is_pure(&self, step: &Step) -> bool {
        step.foreach.is_none()
            && self
                .engine
                .registry
                .get(&step.uses)
                .is_some_and(|a| a.is_pure())
    }

    /// Saves the step, with the deferred results, in one write.
    pub async fn save(&self, rec: &StepRecord) -> Result<(), StoreError> {
        let mut steps = self.take_deferred();
        if steps.is_empty() {
            return self
                .engine
                .store
                .save_step(&self.execution.id, rec, None)
                .await;
        }
        steps.push(rec.clone());
        self.engine
            .store
            .save_steps(&self.execution.id, &steps)
            .await
    }

    fn take_deferred(&self) -> Vec<StepRecord> {
        std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Keeps a step's result for the run's next write.
    fn defer(&self, rec: &StepRecord) {
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(rec.clone());
    }

    /// Runs `write` with the deferred results before it. Where the store keeps the order of
    /// concurrent writes (SQLite's single writer), they are sent together and share a commit;
    /// elsewhere they are written first, one after another.
    pub async fn with_deferred<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let deferred = self.take_deferred();
        if deferred.is_empty() {
            return write.await;
        }
        let store = &self.engine.store;
        let saves = store.save_steps(&self.execution.id, &deferred);
        if store.orders_concurrent_writes() {
            // try_join polls in order, so the deferred saves are queued before `write`.
            let (_, out) = futures_util::future::try_join(saves, write).await?;
            return Ok(out);
        }
        saves.await?;
        write.await
    }
}

pub enum StepOutcome {
    Done(StepStatus),
    /// Put the run aside until then (clock milliseconds).
    Park(i64),
    Cancelled(String),
    /// The run's own timeout passed during this step.
    TimedOut,
}

pub fn fail(rec: &mut StepRecord, now: i64, message: String) -> StepOutcome {
    rec.status = StepStatus::Failed.as_str().into();
    rec.error = Some(message);
    rec.finished_at = Some(now);
    StepOutcome::Done(StepStatus::Failed)
}

pub async fn run(
    sr: &StepRun<'_>,
    step: &Step,
    rec: &mut StepRecord,
    ctx: &mut Value,
) -> Result<StepOutcome, StoreError> {
    let resuming = rec.status == StepStatus::Waiting.as_str();
    if !resuming {
        rec.started_at = Some(sr.now());
        rec.error = None;
        rec.output = None;
        rec.attempt_log = None;
        rec.items = None;
        if let Some(cond) = &step.condition {
            match sr.condition(cond, ctx, "if") {
                Ok(true) => {}
                Ok(false) => {
                    rec.status = StepStatus::Skipped.as_str().into();
                    rec.output = Some(json!({"reason": "if is false"}).to_string());
                    rec.finished_at = Some(sr.now());
                    sr.save(rec).await?;
                    return Ok(StepOutcome::Done(StepStatus::Skipped));
                }
                Err(e) => {
                    let out = fail(rec, sr.now(), format!("step {:?}: {e}", step.id));
                    sr.save(rec).await?;
                    return Ok(out);
                }
            }
        }
    }
    let started = Instant::now();
    let mut outcome = match step.uses.as_str() {
        "wait" | "approval" => suspend::run(sr, step, rec, ctx, resuming).await?,
        _ if step.foreach.is_some() => foreach::run(sr, step, rec, ctx).await?,
        _ => attempts(sr, step, rec, ctx).await?,
    };
    // A plain step's result rides with the run's next write (see `StepRun::deferred`); a
    // foreach commits item by item, a wait or an approval when it parks.
    let deferrable = step.foreach.is_none() && !matches!(step.uses.as_str(), "wait" | "approval");
    // Parking saved the step already; every other outcome is saved here, a success together
    // with what it leaves in the alert's memory.
    let mut remember = None;
    match outcome {
        StepOutcome::Park(_) => return Ok(outcome),
        StepOutcome::Done(StepStatus::Succeeded) if step.remember.is_some() => {
            match remembered(sr, step, rec, ctx) {
                Ok(r) => remember = r,
                Err(message) => outcome = fail(rec, sr.now(), message),
            }
        }
        _ => {}
    }
    match (&outcome, &remember) {
        (StepOutcome::Done(_), None) if deferrable => sr.defer(rec),
        _ => {
            let save = sr
                .engine
                .store
                .save_step(&sr.execution.id, rec, remember.as_ref());
            sr.with_deferred(save).await?
        }
    }
    if let Some(r) = remember {
        for (k, v) in r.values {
            ctx["memory"][k] = v;
        }
    }
    if let StepOutcome::Done(status) = &outcome {
        sr.engine
            .metrics
            .step(&step.uses, status.as_str(), started.elapsed().as_secs_f64());
    }
    Ok(outcome)
}

/// The step's `remember`, rendered with its own output in view.
fn remembered(
    sr: &StepRun<'_>,
    step: &Step,
    rec: &StepRecord,
    ctx: &Value,
) -> Result<Option<Remember>, String> {
    let Some(spec) = &step.remember else {
        return Ok(None);
    };
    let Some(fingerprint) = fingerprint(ctx) else {
        return Ok(None);
    };
    let mut scope = ctx.clone();
    super::context::record_in_context(&mut scope, rec);
    let mut values = serde_json::Map::new();
    for (name, template) in spec {
        let v = sr
            .render(template, &scope, &format!("remember.{name}"))
            .map_err(|e| format!("step {:?}: {e}", step.id))?;
        values.insert(name.clone(), sr.redactor.value(&v));
    }
    Ok(Some(Remember {
        workflow_id: sr.execution.workflow_id.clone(),
        fingerprint,
        values,
    }))
}

/// Renders the step's input, or fails the step naming the field.
pub fn render_input(
    sr: &StepRun<'_>,
    step: &Step,
    rec: &mut StepRecord,
    ctx: &Value,
) -> Result<Value, StepOutcome> {
    match sr.render(&step.with, ctx, "with") {
        Ok(v) if v.is_null() => Ok(json!({})),
        Ok(v) => Ok(v),
        Err(e) => Err(fail(rec, sr.now(), format!("step {:?}: {e}", step.id))),
    }
}

/// Runs one attempt of the action, bounded by `until` (clock ms) and the run's cancel.
pub async fn one_attempt(
    sr: &StepRun<'_>,
    action: &dyn crate::actions::Action,
    input: Value,
    scope: &Value,
    until: i64,
) -> Option<Result<Value, ActionError>> {
    let actx = ActionContext {
        clients: &sr.engine.clients,
        scope,
        trigger: &sr.trigger.body,
    };
    let left = Duration::from_millis((until - sr.now()).max(0) as u64);
    tokio::select! {
        r = crate::actions::destinations::POLICY.scope(
            sr.engine.clients.destinations.clone(),
            tokio::time::timeout(left, action.run(input, &actx)),
        ) => Some(r.unwrap_or_else(|_| {
            Err(ActionError::permanent(format!("timed out after {}", short(left))))
        })),
        _ = sr.cancel.cancelled() => None,
    }
}

async fn attempts(
    sr: &StepRun<'_>,
    step: &Step,
    rec: &mut StepRecord,
    ctx: &Value,
) -> Result<StepOutcome, StoreError> {
    let input = match render_input(sr, step, rec, ctx) {
        Ok(v) => v,
        Err(out) => return Ok(out),
    };
    rec.input = Some(sr.redactor.json(&input));
    let Some(action) = sr.engine.registry.get(&step.uses).cloned() else {
        let msg = format!("step {:?}: unknown action {:?}", step.id, step.uses);
        return Ok(fail(rec, sr.now(), msg));
    };
    let max_attempts = step.retry.as_ref().map(|r| r.attempts).unwrap_or(1) as i64;
    let (deadline, run_deadline) = sr.step_deadline(step, rec);
    let mut log: Vec<Value> = crate::store::stored_json(&rec.attempt_log)
        .as_array()
        .cloned()
        .unwrap_or_default();
    rec.attempts += 1;
    rec.status = StepStatus::Running.as_str().into();
    // Committed before an action with effects runs, so that a crash from here on shows as
    // a running step and the rerun counts as another attempt. Pure actions need not wait.
    if !action.is_pure() {
        sr.save(rec).await?;
    }
    let attempt_started = sr.now();
    let Some(result) = one_attempt(sr, action.as_ref(), input, ctx, deadline).await else {
        rec.status = StepStatus::Cancelled.as_str().into();
        rec.error = Some("cancelled during this step".into());
        rec.finished_at = Some(sr.now());
        return Ok(StepOutcome::Cancelled("cancelled".into()));
    };
    let now = sr.now();
    if result.is_err() && run_deadline && now >= deadline {
        fail(rec, now, "the run's timeout passed during this step".into());
        return Ok(StepOutcome::TimedOut);
    }
    log.push(json!({
        "attempt": rec.attempts,
        "started_at": crate::rfc3339(attempt_started),
        "finished_at": crate::rfc3339(now),
        "error": result.as_ref().err().map(|e| sr.redactor.text(&e.message)),
    }));
    rec.attempt_log = Some(Value::Array(log).to_string());
    match result {
        Ok(output) => {
            rec.status = StepStatus::Succeeded.as_str().into();
            rec.output = Some(sr.redactor.json(&output));
            rec.error = None;
            rec.finished_at = Some(now);
            Ok(StepOutcome::Done(StepStatus::Succeeded))
        }
        Err(e) => {
            rec.output = e.output.as_ref().map(|o| sr.redactor.json(o));
            let message = sr.redactor.text(&e.message);
            // A service that said when to come back (429 Retry-After) is not asked sooner.
            let delay = backoff(step, rec.attempts as u32).max(e.retry_after.unwrap_or_default());
            let retry_at = now + delay.as_millis() as i64;
            if e.retryable && rec.attempts < max_attempts && retry_at < deadline {
                rec.status = StepStatus::Waiting.as_str().into();
                rec.error = Some(format!(
                    "attempt {} of {max_attempts} failed, next at {}: {message}",
                    rec.attempts,
                    crate::rfc3339(retry_at)
                ));
                sr.save(rec).await?;
                return Ok(StepOutcome::Park(retry_at));
            }
            Ok(fail(rec, now, message))
        }
    }
}

/// Exponential backoff from `retry.backoff`, capped by `retry.max_backoff`, with jitter so
/// that runs failing together do not retry together. `attempt` is the one that failed.
pub fn backoff(step: &Step, attempt: u32) -> Duration {
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

pub fn short(d: Duration) -> String {
    alertflow_domain::Duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

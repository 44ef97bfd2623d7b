//! Steps that wait without holding a worker: `wait` (a duration, an instant, or until the
//! alert resolves) and `approval` (until someone decides, or its timeout). Each parks the run
//! and is looked at again when its job comes back: at its time, or woken early by a resolved
//! notification or a decision.

use super::step::{fail, render_input, StepOutcome, StepRun};
use super::Engine;
use crate::actions::{approval, wait};
use crate::store::{StepRecord, StoreError};
use alertflow_domain::execution::StepStatus;
use alertflow_domain::workflow::Step;
use serde_json::{json, Value};

pub async fn run(
    sr: &StepRun<'_>,
    step: &Step,
    rec: &mut StepRecord,
    ctx: &Value,
    resuming: bool,
) -> Result<StepOutcome, StoreError> {
    // The input is rendered again on resume (what is stored is redacted); the times it
    // yields are kept in the output, so a resume sees the same deadline.
    let input = match render_input(sr, step, rec, ctx) {
        Ok(v) => v,
        Err(out) => return Ok(out),
    };
    if !resuming {
        rec.input = Some(sr.redactor.json(&input));
        rec.attempts = 1;
    }
    let started = rec.started_at.unwrap_or_else(|| sr.now());
    if step.uses == "wait" {
        wait_step(sr, step, rec, &input, started).await
    } else {
        approval_step(sr, step, rec, &input, started).await
    }
}

async fn wait_step(
    sr: &StepRun<'_>,
    step: &Step,
    rec: &mut StepRecord,
    input: &Value,
    started: i64,
) -> Result<StepOutcome, StoreError> {
    let plan = match wait::plan(input, started) {
        Ok(p) => p,
        Err(e) => return Ok(fail(rec, sr.now(), format!("step {:?}: {e}", step.id))),
    };
    let now = sr.now();
    let ended = |rec: &mut StepRecord, reason: &str| {
        rec.status = StepStatus::Succeeded.as_str().into();
        rec.output = Some(json!({"reason": reason, "ended_at": crate::rfc3339(now), "until": crate::rfc3339(plan.until)}).to_string());
        rec.finished_at = Some(now);
        StepOutcome::Done(StepStatus::Succeeded)
    };
    if plan.until_resolved && sr.execution.resolved_at.is_some() {
        if plan.cancel_on_resolved {
            rec.status = StepStatus::Cancelled.as_str().into();
            rec.output =
                Some(json!({"reason": "resolved", "ended_at": crate::rfc3339(now)}).to_string());
            rec.finished_at = Some(now);
            return Ok(StepOutcome::Cancelled(
                "the alert resolved during the wait".into(),
            ));
        }
        return Ok(ended(rec, "resolved"));
    }
    if now >= plan.until {
        return Ok(ended(rec, "elapsed"));
    }
    rec.status = StepStatus::Waiting.as_str().into();
    rec.output = Some(
        json!({"until": crate::rfc3339(plan.until), "until_resolved": plan.until_resolved})
            .to_string(),
    );
    sr.save(rec).await?;
    Ok(StepOutcome::Park(plan.until))
}

async fn approval_step(
    sr: &StepRun<'_>,
    step: &Step,
    rec: &mut StepRecord,
    input: &Value,
    started: i64,
) -> Result<StepOutcome, StoreError> {
    let plan = match approval::plan(input, started) {
        Ok(p) => p,
        Err(e) => return Ok(fail(rec, sr.now(), format!("step {:?}: {e}", step.id))),
    };
    let decisions = sr.engine.store.approvals(&sr.execution.id).await?;
    let now = sr.now();
    if let Some(d) = decisions.into_iter().find(|d| d.step_id == step.id) {
        rec.output = Some(
            json!({
                "decision": d.decision, "by": d.decided_by, "at": crate::rfc3339(d.decided_at),
                "comment": d.comment,
            })
            .to_string(),
        );
        rec.finished_at = Some(now);
        if d.decision == "approved" {
            rec.status = StepStatus::Succeeded.as_str().into();
            rec.error = None;
            return Ok(StepOutcome::Done(StepStatus::Succeeded));
        }
        rec.status = StepStatus::Failed.as_str().into();
        rec.error = Some(format!("denied by {}", d.decided_by));
        return Ok(StepOutcome::Done(StepStatus::Failed));
    }
    if now >= plan.expires_at {
        rec.output =
            Some(json!({"decision": "timeout", "by": null, "at": crate::rfc3339(now)}).to_string());
        let waited = super::step::short(std::time::Duration::from_millis(
            (plan.expires_at - started).max(0) as u64,
        ));
        return Ok(fail(rec, now, format!("no decision within {waited}")));
    }
    rec.status = StepStatus::Waiting.as_str().into();
    rec.output = Some(json!({
        "message": plan.message,
        "approvers": plan.approvers,
        "expires_at": crate::rfc3339(plan.expires_at),
        "approve_url": approval_link(sr.engine, &sr.execution.id, &step.id, LinkDecision::Approve),
        "deny_url": approval_link(sr.engine, &sr.execution.id, &step.id, LinkDecision::Deny),
    }).to_string());
    sr.save(rec).await?;
    Ok(StepOutcome::Park(plan.expires_at))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkDecision {
    Approve,
    Deny,
}

/// What a signed approval link carries.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LinkClaims {
    pub execution: String,
    pub step: String,
    pub decision: LinkDecision,
}

/// A link that decides one approval step without a sign-in: whoever holds it may decide, so
/// it goes only where the approvers are (their Slack channel, their mail).
pub fn approval_link(
    engine: &Engine,
    execution: &str,
    step: &str,
    decision: LinkDecision,
) -> String {
    let claims = LinkClaims {
        execution: execution.to_string(),
        step: step.to_string(),
        decision,
    };
    let token = engine
        .master
        .sign(&serde_json::to_vec(&claims).unwrap_or_default());
    format!(
        "{}/approvals/{token}",
        engine.public_base.trim_end_matches('/')
    )
}

//! `/api/v1`: cancel, replay and approve runs; secrets; schedules. And the signed approval
//! links, which need no sign-in (the link is the credential).

use super::api::not_found;
use super::auth::{route, Role, Route};
use super::User;
use crate::actions::approval;
use crate::engine::{schedule, LinkDecision};
use crate::error::{Error, Result};
use crate::ingest::new_id;
use crate::store::{ApprovalRecord, CancelOutcome, NewExecution};
use crate::{rfc3339, AppState};
use alertflow_domain::workflow::{TriggerType, Workflow};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// The routes of this file with the role each needs (see `auth`).
pub fn routes() -> Vec<Route> {
    use Method as M;
    use Role::*;
    vec![
        route(M::POST, "/executions/{id}/cancel", Editor, cancel),
        route(M::POST, "/executions/{id}/replay", Editor, replay),
        route(M::POST, "/executions/{id}/approval", Editor, decide),
        route(M::GET, "/workflows/{id}/schedule", Viewer, next_fires),
        route(M::GET, "/secrets", Viewer, list_secrets),
        route(M::PUT, "/secrets/{name}", Editor, set_secret),
        route(M::DELETE, "/secrets/{name}", Editor, delete_secret),
    ]
}

/// Routes outside the token check.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/approvals/{token}", get(link_page).post(link_decide))
}

#[utoipa::path(post, path = "/api/v1/executions/{id}/cancel", tag = "executions", params(("id" = String, Path)), responses((status = 202, description = "{id, status: cancelled|cancelling}"), (status = 404), (status = 409, description = "already ended")))]
pub(super) async fn cancel(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let outcome = s
        .store
        .cancel(&id, s.clock.now_ms())
        .await
        .map_err(not_found(format!("no execution {id:?}")))?;
    let status = match outcome {
        CancelOutcome::Cancelled => "cancelled",
        CancelOutcome::Requested => {
            // Here at once; on another node, at its next heartbeat.
            if let Some(engine) = &s.engine {
                engine.cancel_local(&id);
            }
            "cancelling"
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": status})),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub(super) struct ReplayRequest {
    /// `current` (default): the workflow as it is now; `recorded`: the version the run used.
    #[serde(default)]
    version: Option<String>,
}

fn trigger_name(stored: &str) -> &'static str {
    [
        TriggerType::Prometheus,
        TriggerType::Webhook,
        TriggerType::Manual,
        TriggerType::Schedule,
    ]
    .into_iter()
    .map(TriggerType::as_str)
    .find(|t| *t == stored)
    .unwrap_or("manual")
}

#[utoipa::path(post, path = "/api/v1/executions/{id}/replay", tag = "executions", params(("id" = String, Path)), request_body(content = Object, description = "{version: current|recorded}"), responses((status = 202, description = "{executions: [id], version}"), (status = 404)))]
pub(super) async fn replay(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<ReplayRequest>>,
) -> Result<Response> {
    let req = body.map(|b| b.0).unwrap_or_default();
    let (ex, _) = s
        .store
        .get_execution(&id)
        .await
        .map_err(not_found(format!("no execution {id:?}")))?;
    let version = match req.version.as_deref() {
        None | Some("current") => None,
        Some("recorded") => Some(ex.version),
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "version: {other:?} is neither \"current\" nor \"recorded\""
            )))
        }
    };
    let record = s
        .store
        .get_workflow(&ex.workflow_id, version)
        .await
        .map_err(not_found(format!(
            "no workflow {:?} to replay against",
            ex.workflow_id
        )))?;
    let wf: Workflow = serde_json::from_str(&record.document)
        .map_err(|e| Error::Internal(format!("stored workflow unreadable: {e}")))?;
    let input = s.store.execution_input(&id).await?;
    let new = NewExecution {
        id: new_id(),
        workflow_id: ex.workflow_id.clone(),
        version: record.version,
        trigger_type: trigger_name(&ex.trigger_type),
        alert_index: ex.alert_index,
        input: Some(input),
        lock_key: wf.trigger.concurrency.and(ex.alert_key.clone()),
        alert_key: ex.alert_key.clone(),
        replay_of: Some(id),
        watches_resolution: wf.may_wait_until_resolved(),
    };
    s.store.create_execution(&new, s.clock.now_ms()).await?;
    s.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"executions": [new.id], "version": record.version})),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(super) struct DecisionRequest {
    /// The approval step; may be left out when one step is waiting.
    step: Option<String>,
    /// `approve` or `deny`.
    decision: String,
    comment: Option<String>,
}

fn decision_word(d: &str) -> Result<&'static str> {
    match d {
        "approve" | "approved" => Ok("approved"),
        "deny" | "denied" => Ok("denied"),
        other => Err(Error::BadRequest(format!(
            "decision: {other:?} is neither \"approve\" nor \"deny\""
        ))),
    }
}

#[utoipa::path(post, path = "/api/v1/executions/{id}/approval", tag = "executions", params(("id" = String, Path)), request_body(content = Object, description = "{decision: approve|deny, step?, comment?}"), responses((status = 200), (status = 403, description = "not among the approvers"), (status = 409, description = "decided already, or not waiting")))]
pub(super) async fn decide(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    Json(req): Json<DecisionRequest>,
) -> Result<Response> {
    let decision = decision_word(&req.decision)?;
    let (_, steps) = s
        .store
        .get_execution(&id)
        .await
        .map_err(not_found(format!("no execution {id:?}")))?;
    let step_id = match req.step {
        Some(step) => step,
        None => {
            let waiting: Vec<&str> = steps
                .iter()
                .filter(|st| {
                    st.status == "waiting"
                        && crate::store::stored_json(&st.output)
                            .get("approve_url")
                            .is_some()
                })
                .map(|st| st.step_id.as_str())
                .collect();
            match waiting.as_slice() {
                [one] => one.to_string(),
                [] => {
                    return Err(Error::Conflict(format!(
                        "execution {id} is not waiting for an approval"
                    )))
                }
                _ => {
                    return Err(Error::BadRequest(format!(
                        "several approvals wait ({}); name the step",
                        waiting.join(", ")
                    )))
                }
            }
        }
    };
    if let Some(rec) = steps.iter().find(|st| st.step_id == step_id) {
        let approvers = approval::approvers(&crate::store::stored_json(&rec.input));
        if !approvers.is_empty() && !approvers.contains(&user.0) {
            return Err(Error::Forbidden(format!(
                "{} is not among the approvers of step {step_id:?} ({})",
                user.0,
                approvers.join(", ")
            )));
        }
    }
    record_decision(&s, &id, &step_id, decision, &user.0, req.comment).await?;
    Ok(
        Json(json!({"execution": id, "step": step_id, "decision": decision, "by": user.0}))
            .into_response(),
    )
}

async fn record_decision(
    s: &AppState,
    id: &str,
    step: &str,
    decision: &str,
    by: &str,
    comment: Option<String>,
) -> Result<()> {
    let record = ApprovalRecord {
        step_id: step.to_string(),
        decision: decision.to_string(),
        decided_by: by.to_string(),
        decided_at: s.clock.now_ms(),
        comment,
    };
    s.store
        .decide(id, &record)
        .await
        .map_err(not_found(format!("no execution {id:?}")))?;
    s.wake.notify_one();
    Ok(())
}

fn link_claims(s: &AppState, token: &str) -> Result<crate::engine::LinkClaims> {
    s.master
        .verify(token)
        .and_then(|payload| serde_json::from_slice(&payload).ok())
        .ok_or_else(|| Error::NotFound("this approval link is not valid".into()))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page with one button: a GET never decides, so link previews in chat cannot approve.
async fn link_page(State(s): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    let claims = link_claims(&s, &token)?;
    let verb = match claims.decision {
        LinkDecision::Approve => "Approve",
        LinkDecision::Deny => "Deny",
    };
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>{verb} - alertflow</title>\
         <p>{verb} step <b>{}</b> of execution <code>{}</code>?</p>\
         <form method=post><button type=submit>{verb}</button></form>",
        escape(&claims.step),
        escape(&claims.execution)
    );
    Ok(Html(page).into_response())
}

async fn link_decide(State(s): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    let claims = link_claims(&s, &token)?;
    let decision = match claims.decision {
        LinkDecision::Approve => "approved",
        LinkDecision::Deny => "denied",
    };
    record_decision(&s, &claims.execution, &claims.step, decision, "link", None).await?;
    Ok(Html(format!(
        "<!doctype html><meta charset=utf-8><title>alertflow</title><p>Step <b>{}</b>: {decision}.</p>",
        escape(&claims.step)
    ))
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/schedule", tag = "workflows", params(("id" = String, Path)), responses((status = 200, description = "{cron, timezone, every, next_fire_at, next: [10 times]}"), (status = 404)))]
pub(super) async fn next_fires(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let record = s
        .store
        .get_workflow(&id, None)
        .await
        .map_err(not_found(format!("no workflow {id:?}")))?;
    let wf: Workflow = serde_json::from_str(&record.document)
        .map_err(|e| Error::Internal(format!("stored workflow unreadable: {e}")))?;
    if wf.trigger.kind != TriggerType::Schedule {
        return Err(Error::NotFound(format!(
            "workflow {id:?} has no schedule trigger"
        )));
    }
    let stored = s.store.next_fire_at(&id).await?;
    let next = schedule::next_fires(&wf.trigger, s.clock.now_ms(), 10);
    Ok(Json(json!({
        "workflow": id,
        "cron": wf.trigger.cron,
        "timezone": wf.trigger.timezone.as_deref().unwrap_or("UTC"),
        "every": wf.trigger.every.map(|d| d.to_string()),
        "next_fire_at": stored.map(rfc3339),
        "next": next,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub(super) struct SecretValue {
    value: String,
}

fn check_secret_name(name: &str) -> Result<()> {
    if alertflow_domain::workflow::is_identifier(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!("invalid secret name {name:?}: use letters, digits and '_', so templates can say secrets.NAME"),
        ))
    }
}

#[utoipa::path(put, path = "/api/v1/secrets/{name}", tag = "secrets", params(("name" = String, Path)), request_body(content = Object, description = "{value}"), responses((status = 201, description = "created"), (status = 200, description = "updated"), (status = 400)))]
pub(super) async fn set_secret(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<SecretValue>,
) -> Result<Response> {
    check_secret_name(&name)?;
    let value = body.value.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(Error::invalid(
            "value",
            format!("secret {name:?}: empty value"),
        ));
    }
    let created = s
        .store
        .set_secret(&name, s.master.encrypt(value.as_bytes()), s.clock.now_ms())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"name": name, "created": created}))).into_response())
}

#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets", responses((status = 200, description = "[{name, created_at, updated_at}], never values")))]
pub(super) async fn list_secrets(State(s): State<AppState>) -> Result<Json<Value>> {
    let list: Vec<Value> = s
        .store
        .secrets(None)
        .await?
        .into_iter()
        .map(|r| json!({"name": r.name, "created_at": rfc3339(r.created_at), "updated_at": rfc3339(r.updated_at)}))
        .collect();
    Ok(Json(Value::Array(list)))
}

#[utoipa::path(delete, path = "/api/v1/secrets/{name}", tag = "secrets", params(("name" = String, Path)), responses((status = 204), (status = 404)))]
pub(super) async fn delete_secret(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    s.store
        .delete_secret(&name)
        .await
        .map_err(not_found(format!("no secret {name:?}")))?;
    Ok(StatusCode::NO_CONTENT)
}

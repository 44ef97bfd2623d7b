//! `/api/v1`: keys, workflows, runs, executions, events. Who may call each is in `routes()`.

use super::auth::{route, AuditDetail, Role, Route};
use super::views::{
    ApplyView, ErrorView, EventView, ExecutionView, KeyView, RunView, VersionView, WorkflowView,
};
use crate::crypto;
use crate::engine::schedule;
use crate::error::{Error, Result};
use crate::ingest::new_id;
use crate::store::{ExecutionFilter, KeyRecord, NewExecution, StoreError};
use crate::{now_ms, rfc3339, AppState};
use alertflow_domain::alertmanager::Notification;
use alertflow_domain::workflow::{self, Split, TriggerType, Workflow};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The routes of this file with the role each needs (see `auth`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    limit: Option<i64>,
}

/// Who changed what, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "[{at, actor, action, target, detail, status}]")))]
async fn list_audit(State(s): State<AppState>, Query(q): Query<AuditQuery>) -> Result<Json<Value>> {
    let entries = s
        .store
        .list_audit(q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(Value::Array(
        entries
            .into_iter()
            .map(|e| {
                serde_json::json!({"at": rfc3339(e.at), "actor": e.actor, "action": e.action,
                    "target": e.target, "detail": e.detail, "status": e.status})
            })
            .collect(),
    )))
}

pub fn routes() -> Vec<Route> {
    use Method as M;
    use Role::*;
    vec![
        route(M::GET, "/keys", Viewer, list_keys),
        route(M::POST, "/keys", Editor, create_key),
        route(M::GET, "/keys/{name}", Viewer, get_key),
        route(M::DELETE, "/keys/{name}", Editor, delete_key),
        // The value is a credential: editors only.
        route(M::GET, "/keys/{name}/value", Editor, reveal_key),
        route(M::GET, "/workflows", Viewer, list_workflows),
        route(M::POST, "/workflows", Editor, apply_workflow),
        route(M::GET, "/workflows/{id}", Viewer, get_workflow),
        route(M::DELETE, "/workflows/{id}", Editor, delete_workflow),
        route(M::GET, "/workflows/{id}/versions", Viewer, list_versions),
        route(M::POST, "/workflows/{id}/run", Editor, run_workflow),
        route(M::GET, "/executions", Viewer, list_executions),
        route(M::GET, "/executions/counts", Viewer, count_executions),
        route(M::GET, "/executions/{id}", Viewer, get_execution),
        route(M::GET, "/executions/{id}/input", Viewer, execution_input),
        route(M::GET, "/events", Viewer, list_events),
        route(M::GET, "/audit", Admin, list_audit),
    ]
}

#[derive(OpenApi)]
#[openapi(
    info(title = "alertflow", description = "Workflow automation for Prometheus Alertmanager. Every /api/v1 route but POST /session wants a user: `Authorization: Bearer TOKEN` (the admin token, or a token from POST /tokens), or the web UI's session cookie with X-CSRF-Token. Roles: viewer reads, editor also changes workflows, keys, secrets and runs, admin also users."),
    paths(
        create_key, list_keys, get_key, reveal_key, delete_key,
        apply_workflow, list_workflows, get_workflow, list_versions, delete_workflow, run_workflow,
        list_executions, count_executions, get_execution, execution_input, list_events, list_audit,
        super::runs::cancel, super::runs::replay, super::runs::decide, super::runs::next_fires,
        super::runs::set_secret, super::runs::list_secrets, super::runs::delete_secret,
        super::users::sign_in, super::users::current_session, super::users::sign_out, super::users::schema,
        super::users::list_users, super::users::create_user, super::users::update_user, super::users::delete_user,
        super::users::list_tokens, super::users::create_token, super::users::delete_token,
        super::hooks::receive,
    ),
    components(schemas(ErrorView, crate::ingest::Accepted)),
    modifiers(&BearerAuth),
    security(("admin_token" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(super) fn not_found(what: String) -> impl FnOnce(StoreError) -> Error {
    move |e| match e {
        StoreError::NotFound => Error::NotFound(what),
        other => other.into(),
    }
}

// --- keys

#[derive(Deserialize, ToSchema)]
struct NewKey {
    name: String,
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = KeyView, description = "Created; `value` is shown"), (status = 409, body = ErrorView)))]
async fn create_key(State(s): State<AppState>, Json(req): Json<NewKey>) -> Result<Response> {
    if !valid_key_name(&req.name) {
        return Err(Error::invalid(
            "name",
            format!(
                "invalid key name {:?}: use 1 to 64 of letters, digits, '-', '_' and '.'",
                req.name
            ),
        ));
    }
    let value = crypto::random_token("afk_");
    let record = KeyRecord {
        name: req.name.clone(),
        digest: crypto::digest(&value),
        value_enc: s.master.encrypt(value.as_bytes()),
        created_at: now_ms(),
        last_used_at: None,
    };
    s.store.create_key(&record).await.map_err(|e| match e {
        StoreError::Conflict => {
            Error::invalid("name", format!("a key named {:?} exists", req.name))
        }
        other => other.into(),
    })?;
    let detail = AuditDetail(format!("key {}", record.name));
    Ok((
        StatusCode::CREATED,
        axum::Extension(detail),
        Json(KeyView::new(&record, Some(value))),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", responses((status = 200, body = Vec<KeyView>)))]
async fn list_keys(State(s): State<AppState>) -> Result<Json<Vec<KeyView>>> {
    let keys = s.store.list_keys().await?;
    Ok(Json(keys.iter().map(|k| KeyView::new(k, None)).collect()))
}

#[utoipa::path(get, path = "/api/v1/keys/{name}", tag = "keys", params(("name" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = ErrorView)))]
async fn get_key(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<KeyView>> {
    let key = s
        .store
        .get_key(&name)
        .await
        .map_err(not_found(format!("no API key {name:?}")))?;
    Ok(Json(KeyView::new(&key, None)))
}

#[utoipa::path(get, path = "/api/v1/keys/{name}/value", tag = "keys", params(("name" = String, Path)),
    responses((status = 200, body = KeyView, description = "With `value`"), (status = 404, body = ErrorView)))]
async fn reveal_key(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<KeyView>> {
    let key = s
        .store
        .get_key(&name)
        .await
        .map_err(not_found(format!("no API key {name:?}")))?;
    let value = s
        .master
        .decrypt(&key.value_enc)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let value = String::from_utf8(value).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Json(KeyView::new(&key, Some(value))))
}

#[utoipa::path(delete, path = "/api/v1/keys/{name}", tag = "keys", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn delete_key(State(s): State<AppState>, Path(name): Path<String>) -> Result<StatusCode> {
    s.store
        .delete_key(&name)
        .await
        .map_err(not_found(format!("no API key {name:?}")))?;
    Ok(StatusCode::NO_CONTENT)
}

// --- workflows

fn webhook_url(s: &AppState, wf: &Workflow) -> Option<String> {
    matches!(
        wf.trigger.kind,
        TriggerType::Prometheus | TriggerType::Webhook
    )
    .then(|| format!("{}/hooks/{}", s.public_base, wf.name))
}

fn parse_stored(document: &str) -> Result<Workflow> {
    serde_json::from_str(document)
        .map_err(|e| Error::Internal(format!("stored workflow unreadable: {e}")))
}

#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body(content = String, content_type = "application/yaml", description = "The workflow document, YAML or JSON"),
    responses((status = 201, body = ApplyView), (status = 200, body = ApplyView, description = "New version, or unchanged"), (status = 422, body = ErrorView)))]
async fn apply_workflow(State(s): State<AppState>, body: Bytes) -> Result<Response> {
    let source = std::str::from_utf8(&body)
        .map_err(|_| Error::BadRequest("workflow document is not UTF-8".into()))?;
    let wf = workflow::parse(source, &s.registry).map_err(Error::InvalidWorkflow)?;
    let refused = s.registry.refusals(&wf);
    if !refused.is_empty() {
        return Err(Error::InvalidWorkflow(refused));
    }
    missing_secrets(&s, &wf).await?;
    let document = serde_json::to_string(&wf).map_err(|e| Error::Internal(e.to_string()))?;
    let now = s.clock.now_ms();
    let next_fire_at = (wf.trigger.kind == TriggerType::Schedule)
        .then(|| schedule::next_fires(&wf.trigger, now, 1))
        .and_then(|next| next.first().cloned())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.timestamp_millis());
    let saved = s
        .store
        .save_workflow(wf.name.as_str(), &document, source, next_fire_at, now_ms())
        .await?;
    let known: Vec<String> = s
        .store
        .list_keys()
        .await?
        .into_iter()
        .map(|k| k.name)
        .collect();
    let warnings = workflow::key_names(&wf)
        .into_iter()
        .filter(|k| !known.iter().any(|n| n == k))
        .map(|k| format!("trigger.api_keys: no API key named {k:?} yet; create it with `alertflow keys create {k}`"))
        .collect();
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = ApplyView {
        id: wf.name.to_string(),
        version: saved.version,
        created: saved.created,
        unchanged: saved.unchanged,
        trigger: wf.trigger.kind.as_str().into(),
        webhook_url: webhook_url(&s, &wf),
        warnings,
    };
    let detail = AuditDetail(format!(
        "workflow {} version {}{}",
        view.id,
        view.version,
        if view.unchanged { " (unchanged)" } else { "" }
    ));
    Ok((status, axum::Extension(detail), Json(view)).into_response())
}

/// A workflow that reads a secret the server does not have is refused at apply time, naming
/// the step and field, rather than failing at its first run.
async fn missing_secrets(s: &AppState, wf: &Workflow) -> Result<()> {
    let wanted = workflow::template_names(wf, "secrets");
    if wanted.is_empty() {
        return Ok(());
    }
    let have: Vec<String> = s
        .store
        .secrets(None)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let problems: Vec<workflow::DocError> = wanted
        .into_iter()
        .filter(|(_, name)| !have.contains(name))
        .map(|(path, name)| workflow::DocError {
            path,
            message: format!(
                "no secret named {name:?}; set it with `alertflow secrets set {name}`"
            ),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidWorkflow(problems))
    }
}

fn workflow_view(
    s: &AppState,
    r: &crate::store::WorkflowRecord,
    full: bool,
) -> Result<WorkflowView> {
    let wf = parse_stored(&r.document)?;
    Ok(WorkflowView {
        id: r.id.clone(),
        version: r.version,
        description: wf.description.clone(),
        trigger: wf.trigger.kind.as_str().into(),
        steps: wf.steps.len(),
        webhook_url: webhook_url(s, &wf),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        document: full.then(|| serde_json::to_value(&wf).unwrap_or_default()),
        source: full.then(|| r.source.clone()),
    })
}

#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", responses((status = 200, body = Vec<WorkflowView>)))]
async fn list_workflows(State(s): State<AppState>) -> Result<Json<Vec<WorkflowView>>> {
    let all = s.store.list_workflows().await?;
    Ok(Json(
        all.iter()
            .map(|r| workflow_view(&s, r, false))
            .collect::<Result<_>>()?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VersionQuery {
    version: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path), VersionQuery),
    responses((status = 200, body = WorkflowView), (status = 404, body = ErrorView)))]
async fn get_workflow(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<WorkflowView>> {
    let r = s
        .store
        .get_workflow(&id, q.version)
        .await
        .map_err(not_found(match q.version {
            Some(v) => format!("no version {v} of workflow {id:?}"),
            None => format!("no workflow {id:?}"),
        }))?;
    Ok(Json(workflow_view(&s, &r, true)?))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/versions", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = Vec<VersionView>), (status = 404, body = ErrorView)))]
async fn list_versions(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<VersionView>>> {
    let versions = s
        .store
        .list_versions(&id)
        .await
        .map_err(not_found(format!("no workflow {id:?}")))?;
    Ok(Json(
        versions
            .iter()
            .map(|v| VersionView {
                version: v.version,
                created_at: rfc3339(v.created_at),
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorView)))]
async fn delete_workflow(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    s.store
        .delete_workflow(&id)
        .await
        .map_err(not_found(format!("no workflow {id:?}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A manual run with the body as input (`{}` when empty). A prometheus workflow checks the body
/// as Alertmanager would send it and, under `split: per_alert`, runs once per alert.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/run", tag = "workflows", params(("id" = String, Path)),
    request_body(content = Object, description = "The input; {} when empty"),
    responses((status = 202, body = RunView), (status = 400, body = ErrorView), (status = 404, body = ErrorView)))]
async fn run_workflow(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let r = s
        .store
        .get_workflow(&id, None)
        .await
        .map_err(not_found(format!("no workflow {id:?}")))?;
    let wf = parse_stored(&r.document)?;
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    serde_json::from_slice::<Value>(&input)
        .map_err(|e| Error::NotJson(format!("input is not JSON: {e}")))?;
    // (alert index, alert key) per run, as the webhook would start them.
    let mut runs = vec![(None, None)];
    if wf.trigger.kind == TriggerType::Prometheus {
        let n = Notification::parse(&input).map_err(Error::NotAlertmanager)?;
        runs = match wf.trigger.split() {
            Split::PerAlert => n
                .alerts
                .iter()
                .enumerate()
                .map(|(i, a)| (Some(i as i64), Some(a.fingerprint.clone())))
                .collect(),
            Split::PerNotification => vec![(None, Some(n.group_key.clone()))],
        };
    }
    let mut ids = Vec::new();
    for (alert_index, alert_key) in runs {
        let ex = NewExecution {
            id: new_id(),
            workflow_id: id.clone(),
            version: r.version,
            trigger_type: "manual",
            alert_index,
            input: Some(input.clone()),
            lock_key: wf.trigger.concurrency.and(alert_key.clone()),
            alert_key,
            replay_of: None,
            watches_resolution: wf.may_wait_until_resolved(),
        };
        s.store.create_execution(&ex, now_ms()).await?;
        ids.push(ex.id);
    }
    s.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(RunView { executions: ids })).into_response())
}

// --- executions and events

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExecutionQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    /// Created at or after this time (RFC 3339).
    since: Option<String>,
    /// Created before this time (RFC 3339).
    until: Option<String>,
    /// Leave out `input` and `steps` (for tables of many executions).
    #[serde(default)]
    summary: bool,
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<i64>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    Error::BadRequest(format!("{field}: {v:?} is not an RFC 3339 time: {e}"))
                })
        })
        .transpose()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CountQuery {
    workflow: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// How many executions there are per status (every status, zeros included), for the
/// counters of the executions page.
#[utoipa::path(get, path = "/api/v1/executions/counts", tag = "executions", params(CountQuery),
    responses((status = 200, body = Object, description = "Status to count")))]
async fn count_executions(
    State(s): State<AppState>,
    Query(q): Query<CountQuery>,
) -> Result<Json<serde_json::Map<String, Value>>> {
    let filter = ExecutionFilter {
        workflow: q.workflow,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        ..Default::default()
    };
    let counted = s.store.count_executions(&filter).await?;
    let mut out = serde_json::Map::new();
    for status in alertflow_domain::execution::ExecutionStatus::ALL
        .iter()
        .copied()
    {
        let n = counted
            .iter()
            .find(|(st, _)| st == status.as_str())
            .map_or(0, |(_, n)| *n);
        out.insert(status.as_str().to_string(), n.into());
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/executions", tag = "executions", params(ExecutionQuery),
    responses((status = 200, body = Vec<ExecutionView>, description = "Newest first; whole records unless summary=true")))]
async fn list_executions(
    State(s): State<AppState>,
    Query(q): Query<ExecutionQuery>,
) -> Result<Json<Vec<ExecutionView>>> {
    if let Some(st) = &q.status {
        st.parse::<alertflow_domain::execution::ExecutionStatus>()
            .map_err(Error::BadRequest)?;
    }
    let filter = ExecutionFilter {
        workflow: q.workflow,
        status: q.status,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let rows = s.store.list_executions(&filter).await?;
    if q.summary {
        return Ok(Json(rows.into_iter().map(ExecutionView::summary).collect()));
    }
    // The same shape as one execution, so scripts can treat both alike. Most rows share a
    // few workflow versions: each is read and parsed once per request.
    let mut versions = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(execution_view(&s, &row.id, &mut versions).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/executions/{id}", tag = "executions", params(("id" = String, Path)),
    responses((status = 200, body = ExecutionView), (status = 404, body = ErrorView)))]
async fn get_execution(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>> {
    Ok(Json(execution_view(&s, &id, &mut HashMap::new()).await?))
}

/// An execution with its input and every step of the version it ran; `versions` holds the
/// workflow versions already parsed.
async fn execution_view(
    s: &AppState,
    id: &str,
    versions: &mut HashMap<(String, i64), Workflow>,
) -> Result<ExecutionView> {
    let (ex, steps) = s
        .store
        .get_execution(id)
        .await
        .map_err(not_found(format!("no execution {id:?}")))?;
    let key = (ex.workflow_id.clone(), ex.version);
    if !versions.contains_key(&key) {
        let record = s.store.get_workflow(&key.0, Some(key.1)).await?;
        versions.insert(key.clone(), parse_stored(&record.document)?);
    }
    let input = s.store.execution_input(id).await?;
    Ok(ExecutionView::detail(ex, steps, &versions[&key], &input))
}

/// The input exactly as received, byte for byte.
#[utoipa::path(get, path = "/api/v1/executions/{id}/input", tag = "executions", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/json", description = "The body as received, byte for byte"), (status = 404, body = ErrorView)))]
async fn execution_input(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let body = s
        .store
        .execution_input(&id)
        .await
        .map_err(not_found(format!("no execution {id:?}")))?;
    Ok(([("content-type", "application/json")], body).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventQuery {
    workflow: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery), responses((status = 200, body = Vec<EventView>)))]
async fn list_events(
    State(s): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<Json<Vec<EventView>>> {
    let rows = s
        .store
        .list_events(q.workflow.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(rows.into_iter().map(EventView::from).collect()))
}

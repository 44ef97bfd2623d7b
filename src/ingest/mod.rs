//! Webhook ingress: from a delivery (key, headers, body) to a durable event and its executions.
//! Every delivery becomes an event, rejected ones too, so `events list` explains each answer.

use crate::crypto;
use crate::error::Error;
use crate::store::{NewEvent, NewExecution};
use crate::AppState;
use alertflow_domain::alertmanager::{AlertStatus, Notification, NotificationError};
use alertflow_domain::template;
use alertflow_domain::workflow::{Split, TriggerType};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

mod hand_over;

/// A delivery as the HTTP layer received it.
pub struct Delivery {
    pub workflow_id: String,
    pub key: Option<String>,
    pub content_type: Option<String>,
    /// `None` when the body was over the limit and was not read.
    pub body: Option<Bytes>,
    /// Record a refused delivery as an event; off for a source over its limit of failures,
    /// so that a flood of bad keys cannot fill the events table.
    pub record_refusal: bool,
}

/// The trigger's 202 answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub event_id: String,
    pub outcome: &'static str,
    pub executions: Vec<String>,
}

/// One delivery starts at most this many runs: Alertmanager groups are far smaller, and a
/// body that fans out further is refused whole rather than flooding the queue.
pub const MAX_RUNS_PER_DELIVERY: usize = 10_000;

pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

pub async fn receive(state: &AppState, delivery: Delivery) -> Result<Accepted, Error> {
    let received_at = crate::now_ms();
    let event_id = new_id();
    let mut key_name = None;
    let decided = decide(state, &delivery, &event_id, received_at, &mut key_name).await;
    let mut event = match decided {
        Ok(event) => event,
        Err(e) if e.status().is_client_error() => {
            if delivery.record_refusal {
                record_rejection(state, &delivery, event_id, received_at, key_name, &e).await;
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let handover = hand_over::prepare(state, &mut event);
    let ingested = state.store.ingest(event).await?;
    match handover {
        Some((engine, run, slot)) if ingested.executions == [run.execution.id.as_str()] => {
            engine.adopt(run, slot)
        }
        _ if !ingested.executions.is_empty() => state.wake.notify_one(),
        _ => {}
    }
    state.metrics.delivery(ingested.outcome);
    Ok(Accepted {
        event_id,
        outcome: ingested.outcome,
        executions: ingested.executions,
    })
}

async fn record_rejection(
    state: &AppState,
    delivery: &Delivery,
    id: String,
    received_at: i64,
    key_name: Option<String>,
    e: &Error,
) {
    state.metrics.delivery("rejected");
    let event = NewEvent {
        id,
        workflow_id: delivery.workflow_id.clone(),
        received_at,
        outcome: "rejected",
        status_code: e.status().as_u16(),
        reason: Some(e.to_string()),
        // An unauthenticated sender does not get to fill our disk.
        key_name: key_name.clone(),
        touch_key: false,
        body: key_name.and(delivery.body.clone()),
        dedupe: None,
        max_runs: None,
        resolved_keys: vec![],
        executions: vec![],
        lease: None,
    };
    if let Err(err) = state.store.ingest(event).await {
        tracing::warn!(error = %err, "could not record a rejected delivery");
    }
}

async fn decide(
    state: &AppState,
    d: &Delivery,
    event_id: &str,
    received_at: i64,
    key_name: &mut Option<String>,
) -> Result<NewEvent, Error> {
    let presented = d
        .key
        .as_deref()
        .filter(|k| !k.is_empty())
        .ok_or(Error::MissingKey)?;
    // One read for both: the key and the workflow's current version. The key is found by the
    // SHA-256 of what was presented, so a key found is the key presented: no need to decrypt
    // the stored copy and compare.
    let lookup = state
        .store
        .hook_lookup(&crypto::digest(presented), &d.workflow_id)
        .await?;
    let key = lookup.key.as_ref().ok_or(Error::WrongKey)?;
    *key_name = Some(key.name.clone());
    if let Err(wait) = crate::http::limits::take(&state.limits.deliveries_per_key, &key.name) {
        state.metrics.delivery("rate_limited");
        return Err(Error::SlowDown(
            format!("too many deliveries with key {:?}; retry later", key.name),
            wait,
        ));
    }

    let record = lookup
        .workflow
        .as_ref()
        .ok_or_else(|| Error::NotFound(format!("no workflow {:?}", d.workflow_id)))?;
    let plan = state
        .plans
        .of(record)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let trigger = &plan.wf.trigger;
    if !trigger.api_keys.is_empty() && !trigger.api_keys.contains(&key.name) {
        return Err(Error::KeyNotAllowed {
            key: key.name.clone(),
            workflow: d.workflow_id.clone(),
        });
    }
    if matches!(trigger.kind, TriggerType::Manual | TriggerType::Schedule) {
        return Err(Error::NotFound(format!(
            "workflow {:?} has a {} trigger and no webhook; start it with `alertflow run {}`",
            d.workflow_id,
            trigger.kind.as_str(),
            d.workflow_id
        )));
    }
    let body = d
        .body
        .clone()
        .ok_or(Error::BodyTooLarge(state.config.max_body_bytes))?;
    if let Some(ct) = &d.content_type {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !(mime == "application/json" || mime.ends_with("+json")) {
            return Err(Error::NotJson(format!(
                "Content-Type is {mime:?}; send application/json"
            )));
        }
    }
    // The body is read once for what needs it: a JSON tree only for `when`, the notification
    // for a prometheus trigger, and otherwise only a check that it is JSON.
    let json: Option<Value> = match trigger.when {
        Some(_) => Some(serde_json::from_slice(&body).map_err(not_json)?),
        None => None,
    };
    let notification = match trigger.kind {
        TriggerType::Prometheus => Some(Notification::parse(&body).map_err(|e| refusal(&body, e))?),
        _ if json.is_none() => {
            serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(not_json)?;
            None
        }
        _ => None,
    };

    let mut dedupe = None;
    let mut alert_count = None;
    // The alert each run is about (fingerprint per alert, else the group), and what this
    // delivery reports resolved: that wakes runs waiting `until_resolved`.
    let mut alert_keys: Vec<String> = Vec::new();
    let mut group_key = None;
    let mut resolved_keys = Vec::new();
    if let Some(n) = notification {
        dedupe = Some((
            n.dedupe_key(),
            trigger.dedupe_window().as_std().as_millis() as i64,
        ));
        alert_count = Some(n.alerts.len());
        resolved_keys = n
            .alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Resolved)
            .map(|a| a.fingerprint.clone())
            .collect();
        if n.status == AlertStatus::Resolved {
            resolved_keys.push(n.group_key.clone());
        }
        alert_keys = n.alerts.into_iter().map(|a| a.fingerprint).collect();
        group_key = Some(n.group_key);
    }

    // Which runs to start: one per notification, or one per alert; `when` filters each.
    let candidates: Vec<Option<usize>> = match (trigger.split(), alert_count) {
        (Split::PerAlert, Some(n)) if n > MAX_RUNS_PER_DELIVERY => {
            return Err(Error::TooManyAlerts(n, MAX_RUNS_PER_DELIVERY));
        }
        (Split::PerAlert, Some(n)) => (0..n).map(Some).collect(),
        _ => vec![None],
    };
    let mut chosen = Vec::new();
    // The body is converted for templates once, however many alerts `when` looks at.
    let body_scope = json.as_ref().map(template::convert);
    for alert_index in candidates {
        let keep = match (&trigger.when, &body_scope, &json) {
            (Some(when), Some(body), Some(json)) => {
                let vars = match alert_index {
                    Some(i) => json!({"alert": json["alerts"][i]}),
                    None => json!({}),
                };
                let scope = template::Scope::new(&vars, Some(body));
                template::condition_in_scope(when, &scope, "trigger.when").map_err(|e| {
                    Error::WhenFailed(format!(
                        "trigger.when could not be evaluated: {}",
                        e.message
                    ))
                })?
            }
            _ => true,
        };
        if keep {
            chosen.push(alert_index);
        }
    }
    let trigger_type = trigger.kind.as_str();
    let (outcome, reason) = if chosen.is_empty() {
        ("filtered", Some("trigger.when is false".to_string()))
    } else {
        ("started", None)
    };
    let executions = chosen
        .into_iter()
        .map(|alert_index| {
            let alert_key = match alert_index {
                Some(i) => alert_keys.get(i).cloned(),
                None => group_key.clone(),
            };
            NewExecution {
                id: new_id(),
                workflow_id: d.workflow_id.clone(),
                version: record.version,
                trigger_type,
                alert_index: alert_index.map(|i| i as i64),
                input: None,
                lock_key: trigger.concurrency.and(alert_key.clone()),
                alert_key,
                replay_of: None,
                watches_resolution: plan.watches_resolution,
            }
        })
        .collect();
    Ok(NewEvent {
        id: event_id.to_string(),
        workflow_id: d.workflow_id.clone(),
        received_at,
        outcome,
        status_code: 202,
        reason,
        touch_key: key.last_used_at.is_none_or(|t| received_at - t > 60_000),
        key_name: Some(key.name.clone()),
        body: Some(body),
        dedupe,
        max_runs: trigger
            .max_runs
            .as_ref()
            .map(|m| (m.count as i64, m.per.as_std().as_millis() as i64)),
        resolved_keys,
        executions,
        lease: None,
    })
}

/// Why a body is not a notification, named as precisely as it can be: not JSON at all, not
/// an object, or the field that is wrong.
fn refusal(body: &[u8], e: NotificationError) -> Error {
    match serde_json::from_slice::<Value>(body) {
        Err(e) => not_json(e),
        Ok(v) if !v.is_object() => Error::NotAlertmanager(NotificationError {
            field: "(root)".into(),
            message: format!("expected a JSON object, got {}", json_kind(&v)),
        }),
        Ok(_) => Error::NotAlertmanager(e),
    }
}

fn not_json(e: serde_json::Error) -> Error {
    Error::NotJson(format!("body is not JSON: {e}"))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

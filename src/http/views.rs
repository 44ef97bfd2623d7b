//! The JSON shapes of the API, which `-o json` prints and scripts rely on.

use crate::rfc3339;
use crate::store::{stored_json, EventRecord, ExecutionRecord, KeyRecord, StepRecord};
use alertflow_domain::workflow::Workflow;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl KeyView {
    pub fn new(k: &KeyRecord, value: Option<String>) -> KeyView {
        KeyView {
            name: k.name.clone(),
            value,
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    pub workflow: String,
    pub outcome: String,
    pub status_code: i64,
    pub reason: Option<String>,
    pub executions: Vec<String>,
    pub received_at: String,
}

impl From<EventRecord> for EventView {
    fn from(e: EventRecord) -> Self {
        EventView {
            id: e.id,
            workflow: e.workflow_id,
            outcome: e.outcome,
            status_code: e.status_code,
            reason: e.reason,
            executions: e.executions,
            received_at: rfc3339(e.received_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TriggerView {
    #[serde(rename = "type")]
    pub kind: String,
    pub event_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ExecutionView {
    pub id: String,
    pub workflow: String,
    pub version: i64,
    pub status: String,
    pub trigger: TriggerView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_index: Option<i64>,
    pub error: Option<String>,
    /// The execution this one replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// When a resolved notification for this run's alert arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// The body received, embedded as it came (same bytes, same escapes).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Box<RawValue>>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
}

#[derive(Serialize, ToSchema)]
pub struct StepView {
    pub id: String,
    pub uses: String,
    pub status: String,
    pub attempts: i64,
    /// The step's `with`, rendered.
    #[schema(value_type = Object)]
    pub input: Value,
    #[schema(value_type = Object)]
    pub output: Value,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Every attempt with its error, when the step was retried or failed.
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub attempt_log: Value,
    /// A foreach step's items: index, status, attempts, output, error.
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub items: Value,
}

impl ExecutionView {
    pub fn summary(e: ExecutionRecord) -> ExecutionView {
        ExecutionView {
            id: e.id,
            workflow: e.workflow_id,
            version: e.version,
            status: e.status,
            trigger: TriggerView {
                kind: e.trigger_type,
                event_id: e.event_id,
            },
            alert_index: e.alert_index,
            error: e.error,
            replay_of: e.replay_of,
            resolved_at: e.resolved_at.map(rfc3339),
            input: None,
            created_at: rfc3339(e.created_at),
            started_at: e.started_at.map(rfc3339),
            finished_at: e.finished_at.map(rfc3339),
            steps: None,
        }
    }

    /// The whole record: input, and every step of the version it ran, in document order,
    /// pending ones included.
    pub fn detail(
        e: ExecutionRecord,
        steps: Vec<StepRecord>,
        wf: &Workflow,
        input: &[u8],
    ) -> ExecutionView {
        let step_views = wf
            .steps
            .iter()
            .map(|s| match steps.iter().find(|r| r.step_id == s.id) {
                Some(r) => StepView {
                    id: s.id.clone(),
                    uses: s.uses.clone(),
                    status: r.status.clone(),
                    attempts: r.attempts,
                    input: stored_json(&r.input),
                    output: stored_json(&r.output),
                    error: r.error.clone(),
                    started_at: r.started_at.map(rfc3339),
                    finished_at: r.finished_at.map(rfc3339),
                    attempt_log: stored_json(&r.attempt_log),
                    items: stored_json(&r.items),
                },
                None => StepView {
                    id: s.id.clone(),
                    uses: s.uses.clone(),
                    status: "pending".into(),
                    attempts: 0,
                    input: Value::Null,
                    output: Value::Null,
                    error: None,
                    started_at: None,
                    finished_at: None,
                    attempt_log: Value::Null,
                    items: Value::Null,
                },
            })
            .collect();
        let raw = std::str::from_utf8(input)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let input = raw.and_then(|s| RawValue::from_string(s.to_string()).ok());
        let mut view = ExecutionView::summary(e);
        view.input = input;
        view.steps = Some(step_views);
        view
    }
}

/// A workflow as listed; `document` and `source` only when one is asked for.
#[derive(Serialize, ToSchema)]
pub struct WorkflowView {
    pub id: String,
    pub version: i64,
    pub description: Option<String>,
    /// prometheus, webhook or manual
    pub trigger: String,
    pub steps: usize,
    /// The Workflow Webhook URL; none for a manual trigger.
    pub webhook_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub document: Option<Value>,
    /// The document as applied, comments and all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApplyView {
    pub id: String,
    pub version: i64,
    pub created: bool,
    /// The document equals the current version; no new version was made.
    pub unchanged: bool,
    pub trigger: String,
    pub webhook_url: Option<String>,
    pub warnings: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct RunView {
    pub executions: Vec<String>,
}

/// Every error: a stable `code` and a message that names the cause.
#[derive(Serialize, ToSchema)]
pub struct ErrorView {
    pub code: String,
    pub message: String,
    /// For a `not_alertmanager` error: the field that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For an `invalid_workflow` error: every problem, with its path.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub details: Option<Value>,
}

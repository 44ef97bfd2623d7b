//! Actions: one file each, behind one trait, registered in `Registry::builtin`.

mod alertmanager_silence;
pub mod approval;
pub mod destinations;
mod email_send;
mod fail;
mod http_request;
pub mod http_util;
mod input;
mod jira_issue;
pub mod jq;
pub mod jq_sandbox;
mod msteams_message;
mod opsgenie_alert;
mod pagerduty_event;
mod prometheus_query;
mod shell_exec;
mod slack_message;
mod transform;
pub mod wait;

use alertflow_domain::schema::{self, is_templated};
use alertflow_domain::workflow::{ActionCatalog, DocError};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a failed action reports. `output` keeps what it got (an HTTP body, say) for the record.
#[derive(Debug, Clone)]
pub struct ActionError {
    pub message: String,
    /// Worth another attempt (network error, 5xx); a 4xx or a bad input is not.
    pub retryable: bool,
    pub output: Option<Value>,
    /// How long the service asked us to wait (429 + Retry-After) before the next attempt.
    pub retry_after: Option<std::time::Duration>,
}

impl ActionError {
    pub fn permanent(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: false,
            output: None,
            retry_after: None,
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: true,
            output: None,
            retry_after: None,
        }
    }
    pub fn with_output(mut self, output: Value) -> Self {
        self.output = Some(output);
        self
    }
}

/// Shared clients, so connection pools are reused across runs.
#[derive(Clone)]
pub struct Clients {
    pub http: reqwest::Client,
    pub destinations: Arc<destinations::Destinations>,
    /// Where jq programs run.
    pub jq: Arc<jq_sandbox::Sandbox>,
}

/// What a running step can see besides its own input.
pub struct ActionContext<'a> {
    pub clients: &'a Clients,
    /// The template context of the step (`alert`, `steps`, `execution`, ...), for defaults.
    pub scope: &'a Value,
    /// The body that started the run (kept apart from `scope`: it can be large, and the runs
    /// of one delivery share it).
    pub trigger: &'a TriggerJson,
}

/// A run's trigger body as JSON, parsed when first asked for: templates read the body in
/// their own form, and few actions need the JSON tree (jq's default input), so most runs
/// never build it.
pub struct TriggerJson {
    body: bytes::Bytes,
    json: std::sync::OnceLock<Value>,
}

impl TriggerJson {
    pub fn new(body: bytes::Bytes) -> TriggerJson {
        TriggerJson {
            body,
            json: Default::default(),
        }
    }

    /// The body as JSON: `{}` when there was none, null when it is not JSON.
    pub fn json(&self) -> &Value {
        self.json.get_or_init(|| {
            if self.body.is_empty() {
                return Value::Object(Default::default());
            }
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        })
    }
}

impl From<Value> for TriggerJson {
    fn from(json: Value) -> TriggerJson {
        TriggerJson {
            body: Default::default(),
            json: json.into(),
        }
    }
}

#[async_trait]
pub trait Action: Send + Sync {
    fn name(&self) -> &'static str;
    /// Touches nothing outside alertflow, so running it twice after a crash is harmless and
    /// its start need not be committed first.
    fn is_pure(&self) -> bool {
        false
    }
    /// JSON Schema of `with`: served by `workflows schema`, drawn as a form by the UI, and
    /// checked at save time (templated strings pass until run time).
    fn inputs(&self) -> Value;
    /// JSON Schema of the output, so editors can complete `steps.ID.output...`.
    fn outputs(&self) -> Value;
    /// Rules the schema cannot say (one of two inputs, a jq program that must compile),
    /// checked on `with` as written when a workflow is saved.
    fn check(&self, _with: &Value) -> Vec<DocError> {
        vec![]
    }
    /// Runs with `input`, the step's `with` after rendering.
    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError>;
}

#[derive(Clone)]
pub struct Registry {
    /// Shared: the registry is cloned with the app state, once per request.
    actions: Arc<BTreeMap<&'static str, Arc<dyn Action>>>,
    shell_allowed: bool,
}

impl Registry {
    /// Every built-in action, with `shell.exec` refusing to run (see [`Registry::with_shell`]).
    pub fn builtin() -> Registry {
        let all: Vec<Arc<dyn Action>> = vec![
            Arc::new(http_request::HttpRequest),
            Arc::new(transform::Transform),
            Arc::new(fail::Fail),
            Arc::new(wait::Wait),
            Arc::new(approval::Approval),
            Arc::new(slack_message::SlackMessage),
            Arc::new(msteams_message::MsTeamsMessage),
            Arc::new(pagerduty_event::PagerDutyEvent),
            Arc::new(opsgenie_alert::OpsgenieAlert),
            Arc::new(email_send::EmailSend),
            Arc::new(jira_issue::JiraIssue),
            Arc::new(prometheus_query::PrometheusQuery),
            Arc::new(alertmanager_silence::AlertmanagerSilence),
            Arc::new(shell_exec::ShellExec { allowed: false }),
        ];
        Registry {
            actions: Arc::new(all.into_iter().map(|a| (a.name(), a)).collect()),
            shell_allowed: false,
        }
    }

    /// Whether `shell.exec` may be saved and run (`serve --allow-shell`).
    pub fn with_shell(mut self, allowed: bool) -> Registry {
        let shell: Arc<dyn Action> = Arc::new(shell_exec::ShellExec { allowed });
        Arc::make_mut(&mut self.actions).insert(shell.name(), shell);
        self.shell_allowed = allowed;
        self
    }

    /// Problems a server adds to a valid document: steps using actions this server does
    /// not allow. Offline `validate` skips this; `apply` does not.
    pub fn refusals(&self, wf: &alertflow_domain::workflow::Workflow) -> Vec<DocError> {
        if self.shell_allowed {
            return vec![];
        }
        wf.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.uses == shell_exec::NAME)
            .map(|(i, s)| {
                problem(
                    &format!("steps[{i}].uses"),
                    format!(
                        "step {:?} uses {}, which this server does not allow; start it with \
                         --allow-shell (ALERTFLOW_ALLOW_SHELL=true) to run commands",
                        s.id,
                        shell_exec::NAME
                    ),
                )
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.actions.get(name)
    }

    /// Every action, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Action>> {
        self.actions.values()
    }
}

impl ActionCatalog for Registry {
    fn names(&self) -> Vec<&'static str> {
        self.actions.keys().copied().collect()
    }
    fn check(&self, uses: &str, with: &Value) -> Option<Vec<DocError>> {
        self.actions.get(uses).map(|a| {
            // An absent `with` is an empty one, so `required` names the missing input.
            let empty = Value::Object(Default::default());
            let with = if with.is_null() { &empty } else { with };
            let mut problems = schema::check(&a.inputs(), with);
            problems.extend(a.check(with));
            problems
        })
    }
}

// Helpers shared by the actions.

/// The alert the run is about: `alert` under `split: per_alert` (or a foreach over alerts).
fn current_alert<'a>(ctx: &'a ActionContext<'_>) -> Option<&'a Value> {
    ctx.scope.get("alert").filter(|a| a.is_object())
}

/// A string at `path` inside the current alert (`labels.instance`), if there is one.
fn alert_str<'a>(ctx: &'a ActionContext<'_>, path: &[&str]) -> Option<&'a str> {
    let mut v = current_alert(ctx)?;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().filter(|s| !s.is_empty())
}

/// The static value of `with.NAME` when it is not a template (for save-time checks).
fn static_str<'a>(with: &'a Value, name: &str) -> Option<&'a str> {
    with.get(name)
        .filter(|v| !is_templated(v))
        .and_then(Value::as_str)
}

fn problem(path: &str, message: impl Into<String>) -> DocError {
    DocError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// The save-time problems of `with` for action `name`, as "path: message" (for tests).
#[cfg(test)]
fn save_problems(name: &str, with: &Value) -> Vec<String> {
    Registry::builtin()
        .check(name, with)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

//! The workflow document: parsed from YAML or JSON, then validated as a whole so that every
//! problem is reported at once, each with its path in the document.

use crate::Duration;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub name: WorkflowId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    /// The whole run's limit; past it the run ends `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// The workflow id, `[a-z0-9][a-z0-9-_]*`; it is part of the webhook URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WorkflowId(String);

impl Workflow {
    /// Whether a run may wait `until_resolved`: a `wait` step sets it to anything but a literal
    /// `false` (a template decides only at run time). Only such runs are looked up by alert when
    /// a resolved notification arrives.
    pub fn may_wait_until_resolved(&self) -> bool {
        self.steps.iter().any(|s| {
            s.uses == "wait"
                && s.with
                    .get("until_resolved")
                    .is_some_and(|v| *v != Value::Bool(false))
        })
    }
}

impl WorkflowId {
    pub fn parse(s: &str) -> Result<WorkflowId, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(WorkflowId(s.to_string()))
        } else {
            Err(format!(
                "invalid workflow name {s:?}: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for WorkflowId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        WorkflowId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerType {
    Prometheus,
    Webhook,
    Manual,
    Schedule,
}

impl TriggerType {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Prometheus => "prometheus",
            TriggerType::Webhook => "webhook",
            TriggerType::Manual => "manual",
            TriggerType::Schedule => "schedule",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    #[default]
    PerNotification,
    PerAlert,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: TriggerType,
    /// Names of the API keys this trigger accepts; empty accepts any valid key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_window: Option<Duration>,
    /// `per_alert`: runs for one alert (one group without `split`) run one at a time, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// At most `count` runs per `per`; what is held back is recorded as a `throttled` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<MaxRuns>,
    /// Schedule triggers: a 5-field cron expression, in `timezone` (default UTC)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// ...or a fixed interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    PerAlert,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxRuns {
    pub count: u32,
    pub per: Duration,
}

impl Trigger {
    pub fn split(&self) -> Split {
        self.split.unwrap_or_default()
    }
    /// Alertmanager resends a group every repeat_interval (4h by default); duplicates from HA
    /// peers and retries arrive within seconds to minutes, so 10 minutes catches them.
    pub fn dedupe_window(&self) -> Duration {
        self.dedupe_window.unwrap_or(Duration::from_secs(600))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Fail,
    Continue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub uses: String,
    #[serde(default, skip_serializing_if = "is_empty_object")]
    pub with: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<String>>,
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_error: OnError,
    /// Runs the step once per item of this list (a template such as `{{ trigger.alerts }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<Value>,
    /// How many `foreach` items run at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Values written to the alert's memory when the step succeeds (templates may read
    /// `steps.<this id>.output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember: Option<serde_json::Map<String, Value>>,
}

fn is_empty_object(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|m| m.is_empty())
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub attempts: u32,
    #[serde(default = "default_backoff")]
    pub backoff: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<Duration>,
}

fn default_backoff() -> Duration {
    Duration::from_secs(1)
}

/// One problem in a document, with its path (`steps[2].needs[0]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> DocError {
    DocError {
        path: path.into(),
        message: message.into(),
    }
}

/// What validation needs to know of the actions, which live outside the domain.
pub trait ActionCatalog {
    fn names(&self) -> Vec<&'static str>;
    /// `None` when no such action; otherwise the problems in its `with`, each with a path
    /// relative to `with` (`url`, `headers.X`).
    fn check(&self, uses: &str, with: &Value) -> Option<Vec<DocError>>;
}

/// Parses a YAML or JSON document and validates it.
pub fn parse(source: &str, actions: &dyn ActionCatalog) -> Result<Workflow, Vec<DocError>> {
    let wf = parse_syntax(source).map_err(|e| vec![e])?;
    let problems = validate(&wf, actions);
    if problems.is_empty() {
        Ok(wf)
    } else {
        Err(problems)
    }
}

fn parse_syntax(source: &str) -> Result<Workflow, DocError> {
    let map_path = |path: String| {
        if path == "." {
            "(document)".to_string()
        } else {
            path
        }
    };
    if source.trim_start().starts_with('{') {
        let de = &mut serde_json::Deserializer::from_str(source);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = map_path(e.path().to_string());
            err(path, e.into_inner().to_string())
        })
    } else {
        let de = serde_yaml::Deserializer::from_str(source);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = map_path(e.path().to_string());
            let inner = e.into_inner();
            err(path, yaml_message(&inner))
        })
    }
}

/// serde_yaml puts its own path and position into the message; keep only the cause and a
/// `(line L, column C)` that points an editor at it.
fn yaml_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    let mut msg = text.as_str();
    if let Some((head, rest)) = msg.split_once(": ") {
        if !head.contains(' ') {
            msg = rest;
        }
    }
    if let Some(i) = msg.find(" at line ") {
        msg = &msg[..i];
    }
    match e.location() {
        Some(l) => format!("{msg} (line {}, column {})", l.line(), l.column()),
        None => msg.to_string(),
    }
}

/// The steps each step waits for: its `needs`, or else the step before it.
pub fn dependencies(wf: &Workflow) -> Vec<Vec<usize>> {
    let index: BTreeMap<&str, usize> = wf
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    wf.steps
        .iter()
        .enumerate()
        .map(|(i, s)| match &s.needs {
            Some(needs) => needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect(),
            None if i > 0 => vec![i - 1],
            None => vec![],
        })
        .collect()
}

/// Names of the API keys a document refers to, for warnings about keys not created yet.
pub fn key_names(wf: &Workflow) -> BTreeSet<&str> {
    wf.trigger.api_keys.iter().map(String::as_str).collect()
}

pub mod json_schema;
mod validate;
pub use validate::{is_identifier, template_names, validate};

#[cfg(test)]
mod tests;

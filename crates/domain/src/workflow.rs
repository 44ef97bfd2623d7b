//! The workflow document: parsed from YAML or JSON, then validated as a whole so that every
//! problem is reported at once, each with its path in the document.

use crate::template::referenced_names;
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
}

/// The workflow id, `[a-z0-9][a-z0-9-_]*`; it is part of the webhook URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WorkflowId(String);

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
}

impl TriggerType {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Prometheus => "prometheus",
            TriggerType::Webhook => "webhook",
            TriggerType::Manual => "manual",
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

/// Context names a template may read, besides `steps`.
const ROOTS: &[&str] = &[
    "trigger",
    "execution",
    "secrets",
    "memory",
    "steps",
    "alert",
];

pub fn validate(wf: &Workflow, actions: &dyn ActionCatalog) -> Vec<DocError> {
    let mut out = Vec::new();
    validate_trigger(&wf.trigger, &mut out);
    if wf.steps.is_empty() {
        out.push(err("steps", "a workflow needs at least one step"));
    }
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, step) in wf.steps.iter().enumerate() {
        if !is_identifier(&step.id) {
            out.push(err(
                format!("steps[{i}].id"),
                format!("invalid step id {:?}: use letters, digits and '_', not starting with a digit, so templates can say steps.ID", step.id),
            ));
        }
        if let Some(&first) = first_index.get(step.id.as_str()) {
            out.push(err(
                format!("steps[{i}].id"),
                format!(
                    "duplicate step id {:?} (first used at steps[{first}])",
                    step.id
                ),
            ));
        } else {
            first_index.insert(&step.id, i);
        }
    }
    for (i, step) in wf.steps.iter().enumerate() {
        for (j, need) in step.needs.iter().flatten().enumerate() {
            if need == &step.id {
                out.push(err(
                    format!("steps[{i}].needs[{j}]"),
                    "a step cannot need itself",
                ));
            } else if !first_index.contains_key(need.as_str()) {
                out.push(err(
                    format!("steps[{i}].needs[{j}]"),
                    format!("unknown step {need:?}"),
                ));
            }
        }
        match actions.check(&step.uses, &step.with) {
            None => out.push(err(
                format!("steps[{i}].uses"),
                format!(
                    "unknown action {:?} (known: {})",
                    step.uses,
                    actions.names().join(", ")
                ),
            )),
            Some(problems) => out.extend(
                problems
                    .into_iter()
                    .map(|p| err(format!("steps[{i}].with.{}", p.path), p.message)),
            ),
        }
        if !step.with.is_null() && !step.with.is_object() {
            out.push(err(
                format!("steps[{i}].with"),
                "must be a mapping of inputs",
            ));
        }
        if let Some(r) = &step.retry {
            if r.attempts == 0 {
                out.push(err(
                    format!("steps[{i}].retry.attempts"),
                    "must be at least 1",
                ));
            }
        }
        let alert_bound = wf.trigger.split() == Split::PerAlert;
        if let Some(cond) = &step.condition {
            check_template(
                cond,
                true,
                &format!("steps[{i}].if"),
                &first_index,
                alert_bound,
                &mut out,
            );
        }
        check_templates_in(
            &step.with,
            &format!("steps[{i}].with"),
            &first_index,
            alert_bound,
            &mut out,
        );
    }
    if out.iter().all(|e| !e.message.contains("unknown step")) {
        if let Some(cycle) = find_cycle(wf) {
            let idx = first_index[cycle[0].as_str()];
            out.push(err(
                format!("steps[{idx}].needs"),
                format!(
                    "cycle in needs: {} (a step without needs follows the one before it)",
                    cycle.join(" -> ")
                ),
            ));
        }
    }
    out
}

fn validate_trigger(t: &Trigger, out: &mut Vec<DocError>) {
    let kind = t.kind;
    if kind != TriggerType::Prometheus {
        if t.split.is_some() {
            out.push(err(
                "trigger.split",
                "only a prometheus trigger splits per alert",
            ));
        }
        if t.dedupe_window.is_some() {
            out.push(err(
                "trigger.dedupe_window",
                "only a prometheus trigger deduplicates",
            ));
        }
    }
    if kind == TriggerType::Manual {
        if !t.api_keys.is_empty() {
            out.push(err(
                "trigger.api_keys",
                "a manual trigger takes no API keys; runs use the admin token",
            ));
        }
        if t.when.is_some() {
            out.push(err("trigger.when", "a manual trigger has no filter"));
        }
    }
    for (i, k) in t.api_keys.iter().enumerate() {
        if k.trim().is_empty() {
            out.push(err(format!("trigger.api_keys[{i}]"), "empty key name"));
        }
    }
    if let Some(when) = &t.when {
        let none = BTreeMap::new();
        let alert_bound = t.split() == Split::PerAlert;
        check_template(when, true, "trigger.when", &none, alert_bound, out);
    }
}

fn check_templates_in(
    v: &Value,
    path: &str,
    steps: &BTreeMap<&str, usize>,
    alert_bound: bool,
    out: &mut Vec<DocError>,
) {
    match v {
        Value::String(s) => check_template(s, false, path, steps, alert_bound, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_templates_in(item, &format!("{path}[{i}]"), steps, alert_bound, out);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                check_templates_in(item, &format!("{path}.{k}"), steps, alert_bound, out);
            }
        }
        _ => {}
    }
}

fn check_template(
    src: &str,
    as_condition: bool,
    path: &str,
    steps: &BTreeMap<&str, usize>,
    alert_bound: bool,
    out: &mut Vec<DocError>,
) {
    let names = match referenced_names(src, as_condition) {
        Ok(n) => n,
        Err(e) => return out.push(err(path, format!("template does not parse: {e}"))),
    };
    for name in names {
        let mut parts = name.split('.');
        let root = parts.next().unwrap_or_default();
        if !ROOTS.contains(&root) {
            out.push(err(
                path,
                format!("unknown name `{root}` (known: {})", ROOTS.join(", ")),
            ));
        } else if root == "alert" && !alert_bound {
            out.push(err(
                path,
                "`alert` is only defined with `split: per_alert`; use trigger.alerts",
            ));
        } else if root == "steps" {
            if let Some(id) = parts.next() {
                if !steps.contains_key(id) {
                    out.push(err(path, format!("unknown step `{id}` in `{name}`")));
                }
            }
        }
    }
}

fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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

fn find_cycle(wf: &Workflow) -> Option<Vec<String>> {
    let deps = dependencies(wf);
    // 0 = unvisited, 1 = on the current path, 2 = done
    let mut state = vec![0u8; deps.len()];
    let mut path = Vec::new();
    fn visit(
        n: usize,
        deps: &[Vec<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[n] = 1;
        path.push(n);
        for &d in &deps[n] {
            if state[d] == 1 {
                let start = path.iter().position(|&p| p == d).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(d);
                return Some(cycle);
            }
            if state[d] == 0 {
                if let Some(c) = visit(d, deps, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state[n] = 2;
        None
    }
    for n in 0..deps.len() {
        if state[n] == 0 {
            if let Some(mut c) = visit(n, &deps, &mut state, &mut path) {
                // visit follows needs backwards; print in run order
                c.reverse();
                return Some(c.into_iter().map(|i| wf.steps[i].id.clone()).collect());
            }
        }
    }
    None
}

/// Names of the API keys a document refers to, for warnings about keys not created yet.
pub fn key_names(wf: &Workflow) -> BTreeSet<&str> {
    wf.trigger.api_keys.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests;

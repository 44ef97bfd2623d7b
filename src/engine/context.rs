//! The template context of a run, and the redaction of secret values from what is stored.

use super::{Engine, Plan};
use crate::actions::TriggerJson;
use crate::store::{stored_json, RunState, StepRecord, StoreError};
use alertflow_domain::template::{self, Scope};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

/// The body that started a run, read for templates, and as JSON when an action asks.
pub struct Trigger {
    pub body: TriggerJson,
    pub jinja: template::JinjaValue,
}

impl Trigger {
    /// Reads the body once, into the form templates see. Building the JSON tree and
    /// converting it instead cost a run of the benchmark's e2e workflow about a tenth of its
    /// instructions in user space (callgrind, bench/ANALYSIS.md round 13).
    fn parse(body: Bytes) -> Trigger {
        let jinja = if body.is_empty() {
            template::convert(&json!({}))
        } else {
            template::parse_json(&body).unwrap_or_else(|_| template::convert(&Value::Null))
        };
        Trigger {
            body: TriggerJson::new(body),
            jinja,
        }
    }

    /// The template scope of a step: `ctx` (everything but the trigger) and the trigger.
    pub fn scope(&self, ctx: &Value) -> Scope {
        Scope::new(ctx, Some(&self.jinja))
    }
}

/// Parsed trigger bodies kept per event; enough for the deliveries being worked on at once.
const TRIGGER_CACHE: usize = 64;

/// The run's trigger: from the cache when the run shares its delivery's body with others (its
/// row then comes without the body), else parsed from what was loaded.
async fn trigger(engine: &Engine, run: &RunState) -> Result<Arc<Trigger>, StoreError> {
    let ex = &run.execution;
    let shared = ex.alert_index.is_some() && run.input.is_empty();
    let Some(event) = ex.event_id.as_ref().filter(|_| shared) else {
        return Ok(Arc::new(Trigger::parse(run.input.clone())));
    };
    if let Some(t) = cached(engine, event) {
        return Ok(t);
    }
    // One run loads a body while the others of its delivery wait for it; without this, the
    // first few dozen runs of a 10,000-alert delivery would each parse it, at once.
    let _loading = engine.trigger_loading.lock().await;
    if let Some(t) = cached(engine, event) {
        return Ok(t);
    }
    let body = engine.store.execution_input(&ex.id).await?;
    let parsed = Arc::new(Trigger::parse(body));
    let mut cache = engine.triggers.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= TRIGGER_CACHE {
        cache.clear();
    }
    cache.insert(event.clone(), parsed.clone());
    Ok(parsed)
}

fn cached(engine: &Engine, event: &str) -> Option<Arc<Trigger>> {
    engine
        .triggers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(event)
        .cloned()
}

/// The context: `alert`, `execution`, `secrets`, `memory`, `approvals`, and `steps` as they
/// finish; `trigger` comes apart, shared.
pub async fn initial(
    engine: &Engine,
    run: &RunState,
    plan: &Plan,
) -> Result<(Value, Redactor, Arc<Trigger>), StoreError> {
    let trigger = trigger(engine, run).await?;
    let ex = &run.execution;
    let wf = &plan.wf;
    let mut ctx = json!({
        "execution": {
            "id": ex.id,
            "workflow": wf.name.as_str(),
            "version": ex.version,
            "started_at": crate::rfc3339(ex.started_at.unwrap_or_else(|| engine.clock.now_ms())),
        },
        "steps": {},
        "approvals": {},
    });
    if let Some(i) = ex.alert_index {
        ctx["alert"] = trigger.body.json()["alerts"][i as usize].clone();
    }

    let mut redactor = Redactor::default();
    if !plan.secrets.is_empty() {
        let mut secrets = serde_json::Map::new();
        for record in engine.store.secrets(Some(plan.secrets.clone())).await? {
            // A value this node cannot decrypt is left out: the template then names it as
            // undefined, and the run fails with that, rather than with a garbled value.
            match engine.master.decrypt(&record.value_enc) {
                Ok(plain) => {
                    let value = String::from_utf8_lossy(&plain).into_owned();
                    redactor.add(&value);
                    secrets.insert(record.name, Value::String(value));
                }
                Err(e) => {
                    tracing::warn!(secret = %record.name, error = %e, "cannot decrypt secret")
                }
            }
        }
        ctx["secrets"] = Value::Object(secrets);
    }
    if plan.memory {
        let memory = match fingerprint(&ctx) {
            Some(fp) => engine.store.memory(wf.name.as_str(), &fp).await?,
            None => Default::default(),
        };
        ctx["memory"] = Value::Object(memory);
    }
    for step in wf.steps.iter().filter(|s| s.uses == "approval") {
        ctx["approvals"][&step.id] = json!({
            "approve_url": super::approval_link(engine, &ex.id, &step.id, super::LinkDecision::Approve),
            "deny_url": super::approval_link(engine, &ex.id, &step.id, super::LinkDecision::Deny),
        });
    }
    Ok((ctx, redactor, trigger))
}

/// The current alert's fingerprint, which keys its memory.
pub fn fingerprint(ctx: &Value) -> Option<String> {
    ctx["alert"]["fingerprint"].as_str().map(str::to_string)
}

pub fn record_in_context(ctx: &mut Value, rec: &StepRecord) {
    ctx["steps"][&rec.step_id] = json!({
        "status": rec.status,
        "output": stored_json(&rec.output),
        "error": rec.error,
    });
}

/// Replaces every secret value the run read with `***`, in what is stored and shown.
#[derive(Default, Clone)]
pub struct Redactor {
    values: Vec<String>,
}

pub const REDACTED: &str = "***";

impl Redactor {
    fn add(&mut self, value: &str) {
        if !value.is_empty() {
            self.values.push(value.to_string());
            // Longest first, so a secret that contains another is replaced whole.
            self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }

    pub fn value(&self, v: &Value) -> Value {
        if self.values.is_empty() {
            return v.clone();
        }
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A value as stored JSON text, redacted. Through `serde_json::to_string`, which writes to
    /// a buffer: `Display` (`to_string()`) goes through a formatter call per token.
    pub fn json(&self, v: &Value) -> String {
        let text = if self.values.is_empty() {
            serde_json::to_string(v)
        } else {
            serde_json::to_string(&self.value(v))
        };
        text.expect("a JSON value serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_inside_strings_keys_and_nested_values() {
        let mut r = Redactor::default();
        r.add("s3cr3t");
        r.add("s3cr3t-longer");
        let v = json!({"auth": "Bearer s3cr3t", "s3cr3t": [1, "x s3cr3t-longer y"], "n": 5});
        assert_eq!(
            r.value(&v),
            json!({"auth": "Bearer ***", "***": [1, "x *** y"], "n": 5})
        );
    }
}

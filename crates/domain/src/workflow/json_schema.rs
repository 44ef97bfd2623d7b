//! The JSON Schema of the workflow document (`alertflow workflows schema`), for editors. Each
//! action's `with` is described by the action itself; the rest of the document is here.

use serde_json::{json, Map, Value};

/// One action as the schema shows it.
pub struct ActionSchema {
    pub name: &'static str,
    pub inputs: Value,
    pub outputs: Value,
}

pub fn document(actions: &[ActionSchema]) -> Value {
    let duration = json!({"type": "string", "description": "A duration: 500ms, 30s, 5m, 1h30m, 2d.",
                          "pattern": "^\\s*([0-9]+\\s*(ns|us|ms|s|sec|m|min|h|hr|d|w)\\s*)+$"});
    let template = json!({"type": "string", "description": "A Jinja template ({{ ... }})."});
    let names: Vec<&str> = actions.iter().map(|a| a.name).collect();
    let per_action: Vec<Value> = actions
        .iter()
        .map(|a| {
            json!({
                "if": {"properties": {"uses": {"const": a.name}}, "required": ["uses"]},
                "then": {"properties": {"with": a.inputs}},
            })
        })
        .collect();
    let mut outputs = Map::new();
    for a in actions {
        outputs.insert(
            a.name.to_string(),
            json!({"inputs": a.inputs, "outputs": a.outputs}),
        );
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://alertflow.dev/schema/workflow.json",
        "title": "alertflow workflow",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "trigger", "steps"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
                     "description": "The workflow id; part of the webhook URL."},
            "description": {"type": "string"},
            "timeout": {"$ref": "#/$defs/duration", "description": "The whole run's limit; past it the run ends timed_out."},
            "trigger": {"$ref": "#/$defs/trigger"},
            "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}}
        },
        "$defs": {
            "duration": duration,
            "template": template,
            "trigger": {
                "type": "object",
                "additionalProperties": false,
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["prometheus", "webhook", "manual", "schedule"]},
                    "api_keys": {"type": "array", "items": {"type": "string"}, "description": "Names of the API keys accepted (default any)."},
                    "split": {"enum": ["per_notification", "per_alert"]},
                    "when": {"type": "string", "description": "A Jinja expression; false records the delivery as filtered."},
                    "dedupe_window": {"$ref": "#/$defs/duration"},
                    "concurrency": {"enum": ["per_alert"], "description": "Runs for one alert (one group without split) run one at a time, in order."},
                    "max_runs": {"type": "object", "additionalProperties": false, "required": ["count", "per"],
                                 "properties": {"count": {"type": "integer", "minimum": 1}, "per": {"$ref": "#/$defs/duration"}}},
                    "cron": {"type": "string", "description": "Schedule: 5 fields (minute hour day-of-month month day-of-week)."},
                    "timezone": {"type": "string", "description": "Schedule: an IANA time zone (default UTC)."},
                    "every": {"$ref": "#/$defs/duration"}
                }
            },
            "step": {
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "uses"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                    "name": {"type": "string"},
                    "uses": {"enum": names},
                    "with": {"type": "object"},
                    "needs": {"type": "array", "items": {"type": "string"}},
                    "if": {"type": "string", "description": "A Jinja expression; false skips the step."},
                    "retry": {"type": "object", "additionalProperties": false, "required": ["attempts"],
                              "properties": {"attempts": {"type": "integer", "minimum": 1},
                                             "backoff": {"$ref": "#/$defs/duration"},
                                             "max_backoff": {"$ref": "#/$defs/duration"}}},
                    "timeout": {"$ref": "#/$defs/duration"},
                    "on_error": {"enum": ["fail", "continue"]},
                    "foreach": {"type": ["string", "array"], "description": "Run once per item (`item`, `index`)."},
                    "concurrency": {"type": "integer", "minimum": 1},
                    "remember": {"type": "object", "description": "Values kept in the alert's memory when the step succeeds."}
                },
                "allOf": per_action
            }
        },
        "x-actions": outputs
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::Workflow;

    /// Every field the model accepts is in the schema, so editors are never told a valid
    /// document is wrong.
    #[test]
    fn the_schema_names_every_field_of_the_model() {
        let doc = "name: x\ntimeout: 1h\ntrigger: {type: prometheus, api_keys: [a], split: per_alert, when: 'true', dedupe_window: 1m, concurrency: per_alert, max_runs: {count: 1, per: 1h}}\nsteps:\n  - {id: a, name: A, uses: fail, with: {message: m}, needs: [], if: 'true', retry: {attempts: 2, backoff: 1s, max_backoff: 1m}, timeout: 1s, on_error: continue, foreach: [1], concurrency: 2, remember: {k: v}}\n";
        let wf: Workflow = serde_yaml::from_str(doc).unwrap();
        let v = serde_json::to_value(&wf).unwrap();
        let schema = document(&[]);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let props = |path: &str| schema.pointer(path).unwrap().as_object().unwrap().clone();
        for k in keys(&v) {
            assert!(props("/properties").contains_key(&k), "document field {k}");
        }
        for k in keys(&v["trigger"]) {
            assert!(
                props("/$defs/trigger/properties").contains_key(&k),
                "trigger field {k}"
            );
        }
        for k in keys(&v["steps"][0]) {
            assert!(
                props("/$defs/step/properties").contains_key(&k),
                "step field {k}"
            );
        }
        let sched: Workflow = serde_yaml::from_str("name: s\ntrigger: {type: schedule, cron: '* * * * *', timezone: UTC, every: 1m}\nsteps: [{id: a, uses: fail}]\n").unwrap();
        for k in keys(&serde_json::to_value(&sched).unwrap()["trigger"]) {
            assert!(
                props("/$defs/trigger/properties").contains_key(&k),
                "trigger field {k}"
            );
        }
    }
}

//! `wait`: pauses the run for a duration or until an instant, without holding a worker; with
//! `until_resolved` it ends early when a resolved notification for the same alert arrives.
//! The engine runs it (it parks the run); this file describes and checks it.

use super::*;
use alertflow_domain::Duration;

pub struct Wait;

pub struct WaitPlan {
    /// Clock milliseconds.
    pub until: i64,
    pub until_resolved: bool,
    /// `on_resolved: cancel`: a resolve cancels the run instead of letting it go on.
    pub cancel_on_resolved: bool,
}

/// The wait's end from its rendered input and its start.
pub fn plan(input: &Value, started: i64) -> Result<WaitPlan, String> {
    let until = match (input.get("duration"), input.get("until")) {
        (Some(d), None) => {
            let d: Duration =
                serde_json::from_value(d.clone()).map_err(|e| format!("duration: {e}"))?;
            started + d.as_std().as_millis() as i64
        }
        (None, Some(Value::String(t))) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| format!("until: {t:?} is not an RFC 3339 time: {e}"))?
            .timestamp_millis(),
        (None, Some(_)) => return Err("until: must be an RFC 3339 time".into()),
        _ => return Err("give duration or until".into()),
    };
    let until_resolved = input
        .get("until_resolved")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let cancel_on_resolved = input.get("on_resolved").and_then(Value::as_str) == Some("cancel");
    Ok(WaitPlan {
        until,
        until_resolved,
        cancel_on_resolved,
    })
}

#[async_trait]
impl Action for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }

    fn is_pure(&self) -> bool {
        true
    }

    fn inputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "duration": {"format": "duration", "description": "How long to wait, from the step's start (30s, 5m, 1h)."},
                "until": {"type": "string", "format": "date-time", "description": "Or wait until this RFC 3339 time."},
                "until_resolved": {"type": "boolean", "description": "End early when a resolved notification for the same alert arrives."},
                "on_resolved": {"enum": ["continue", "cancel"], "description": "With until_resolved: go on with the next steps (default), or cancel the run."}
            }
        })
    }

    fn outputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "reason": {"enum": ["elapsed", "resolved"]},
                "ended_at": {"type": "string", "format": "date-time"},
                "until": {"type": "string", "format": "date-time"}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        match (with.get("duration"), with.get("until")) {
            (Some(_), Some(_)) => vec![problem("until", "give either duration or until, not both")],
            (None, None) => vec![problem("duration", "required (or until)")],
            (None, Some(Value::String(t))) if !is_templated(&with["until"]) => {
                match chrono::DateTime::parse_from_rfc3339(t) {
                    Ok(_) => vec![],
                    Err(e) => vec![problem(
                        "until",
                        format!("{t:?} is not an RFC 3339 time: {e}"),
                    )],
                }
            }
            _ => vec![],
        }
    }

    async fn run(&self, _: Value, _: &ActionContext<'_>) -> Result<Value, ActionError> {
        Err(ActionError::permanent("wait is run by the engine"))
    }
}

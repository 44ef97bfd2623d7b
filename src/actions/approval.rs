//! `approval`: the run waits (`waiting`) until someone approves or denies, through the API,
//! the CLI or a signed link, or until its timeout. Approved, the step succeeds; denied or
//! timed out, it fails, so what follows runs only on approval unless the step says
//! `on_error: continue` and the steps after branch on `steps.ID.output.decision`.
//! The engine runs it (it parks the run); this file describes and checks it.

use super::*;
use alertflow_domain::Duration;

pub struct Approval;

/// Without a timeout, an approval waits this long.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub struct ApprovalPlan {
    pub message: Option<String>,
    pub approvers: Vec<String>,
    /// Clock milliseconds.
    pub expires_at: i64,
}

pub fn plan(input: &Value, started: i64) -> Result<ApprovalPlan, String> {
    let timeout = match input.get("timeout") {
        Some(t) => serde_json::from_value::<Duration>(t.clone())
            .map_err(|e| format!("timeout: {e}"))?
            .as_std(),
        None => DEFAULT_TIMEOUT,
    };
    Ok(ApprovalPlan {
        message: input
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string),
        approvers: approvers(input),
        expires_at: started + timeout.as_millis() as i64,
    })
}

/// The user names allowed to decide through the API (empty: any editor).
pub fn approvers(input: &Value) -> Vec<String> {
    input
        .get("approvers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl Action for Approval {
    fn name(&self) -> &'static str {
        "approval"
    }

    fn is_pure(&self) -> bool {
        true
    }

    fn inputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "message": {"type": "string", "description": "What is to be decided, shown with the links."},
                "timeout": {"format": "duration", "description": "How long to wait for a decision (default 24h)."},
                "approvers": {"type": "array", "items": {"type": "string"}, "description": "User names that may decide through the API or CLI (default: anyone who may run workflows). A signed link decides for whoever holds it."}
            }
        })
    }

    fn outputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "decision": {"enum": ["approved", "denied", "timeout"]},
                "by": {"type": ["string", "null"]},
                "at": {"type": "string", "format": "date-time"},
                "comment": {"type": ["string", "null"]}
            }
        })
    }

    async fn run(&self, _: Value, _: &ActionContext<'_>) -> Result<Value, ActionError> {
        Err(ActionError::permanent("approval is run by the engine"))
    }
}

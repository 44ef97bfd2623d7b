//! `fail`: ends the step as failed with a message (useful after a check, or to test paths).

use super::*;

pub struct Fail;

#[async_trait]
impl Action for Fail {
    fn name(&self) -> &'static str {
        "fail"
    }

    fn is_pure(&self) -> bool {
        true
    }

    fn inputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["message"],
            "properties": {"message": {"type": "string", "description": "The step's error."}}
        })
    }

    fn outputs(&self) -> Value {
        serde_json::json!({"description": "None: the step fails with the message."})
    }

    async fn run(&self, input: Value, _: &ActionContext<'_>) -> Result<Value, ActionError> {
        let message = match input.get("message") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "failed".to_string(),
        };
        Err(ActionError::permanent(message))
    }
}

//! `transform`: returns `value` (its templates already rendered), or the result of a jq program
//! (through jaq) applied to `input`, which defaults to the trigger body.

use super::*;
use crate::actions::jq;

pub struct Transform;

#[async_trait]
impl Action for Transform {
    fn name(&self) -> &'static str {
        "transform"
    }

    fn is_pure(&self) -> bool {
        true
    }

    fn inputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "value": {"description": "Any structure; its templates are rendered and it becomes the output."},
                "jq": {"type": "string", "description": "A jq program (run by jaq); its result is the output."},
                "input": {"description": "What the jq program reads (default: the trigger body)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        serde_json::json!({"description": "The value, or the jq result (several results become a list)."})
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        let mut out = Vec::new();
        match (with.get("value"), with.get("jq")) {
            (Some(_), Some(_)) => out.push(problem("jq", "give either value or jq, not both")),
            (None, None) => out.push(problem("value", "required (or jq)")),
            (None, Some(Value::String(src))) if !is_templated(&with["jq"]) => {
                out.extend(jq::check(src).err().map(|e| problem("jq", e)))
            }
            _ => {}
        }
        out
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        if let Some(program) = input.get("jq") {
            let program = program
                .as_str()
                .ok_or_else(|| ActionError::permanent("jq must be a string"))?;
            let data = match input.get("input") {
                Some(v) => v.clone(),
                None => ctx.trigger.json().clone(),
            };
            // In the sandbox's process: a program that loops forever is killed at the step's
            // timeout, and one that overflows its stack takes down only its worker.
            return ctx
                .clients
                .jq
                .run(program, &data)
                .await
                .map_err(ActionError::permanent);
        }
        Ok(input.get("value").cloned().unwrap_or(Value::Null))
    }
}

//! Reading a step's rendered input: the same schema that checked `with` at save time checks it
//! again after rendering (templates are only known then), and every error names the field.

use super::{Action, ActionError};
use alertflow_domain::schema;
use serde_json::{Map, Value};
use std::time::Duration;

#[derive(Debug)]
pub struct Input {
    map: Map<String, Value>,
}

impl Input {
    /// Checks `input` against the action's input schema. Scalars rendered into a field the
    /// schema calls a string become that string (`"{{ steps.q.output.value }}"` is a number).
    pub fn new(schema: &Value, input: Value) -> Result<Input, ActionError> {
        let mut map = match input {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(ActionError::permanent(format!(
                    "with: must be a mapping of inputs, not {other}"
                )))
            }
        };
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in map.iter_mut() {
                let wants_string = props
                    .get(k)
                    .and_then(|p| p.get("type"))
                    .is_some_and(|t| t == "string");
                if wants_string && (v.is_number() || v.is_boolean()) {
                    *v = Value::String(v.to_string());
                }
            }
        }
        let problems = schema::check(schema, &Value::Object(map.clone()));
        if !problems.is_empty() {
            let all: Vec<String> = problems
                .iter()
                .map(|p| format!("with.{}: {}", p.path, p.message))
                .collect();
            return Err(ActionError::permanent(all.join("; ")));
        }
        Ok(Input { map })
    }

    /// [`Input::new`] with the action's schema, then the action's own `check`: the rules
    /// applied at save time, applied again to the rendered input.
    pub fn checked(action: &dyn Action, input: Value) -> Result<Input, ActionError> {
        let input = Input::new(&action.inputs(), input)?;
        let value = Value::Object(input.map.clone());
        match action.check(&value).into_iter().next() {
            Some(p) => Err(field(&p.path, p.message)),
            None => Ok(input),
        }
    }

    /// A mapping of strings (`headers`), as pairs.
    pub fn string_map(&self, name: &str) -> Vec<(String, String)> {
        match self.get(name) {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), v)
                })
                .collect(),
            _ => vec![],
        }
    }

    /// A present, non-null input.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// A string input that must be there and not be empty.
    pub fn required(&self, name: &str) -> Result<&str, ActionError> {
        match self.str(name) {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(field(name, "must not be empty")),
            None => Err(field(name, "required")),
        }
    }

    /// A duration input (`30s`, `1h`), or `default`.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, ActionError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => serde_json::from_value::<alertflow_domain::Duration>(v.clone())
                .map(|d| d.as_std())
                .map_err(|e| field(name, e.to_string())),
        }
    }

    /// One string or a list of strings (`to: a@x` or `to: [a@x, b@x]`).
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect(),
            _ => vec![],
        }
    }
}

/// A permanent error about one input, named as the workflow names it: `with.NAME: ...`.
pub fn field(name: &str, message: impl std::fmt::Display) -> ActionError {
    ActionError::permanent(format!("with.{name}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "additionalProperties": false, "required": ["key"],
               "properties": {"key": {"type": "string"}, "n": {"type": "integer"},
                              "when": {"format": "duration"}, "to": {"type": ["string", "array"]}}})
    }

    #[test]
    fn rendered_values_are_checked_and_errors_name_the_field() {
        let err = Input::new(&schema(), json!({"n": "x"})).err().unwrap();
        assert_eq!(
            err.message,
            "with.n: must be integer, not string; with.key: required"
        );
        assert!(!err.retryable);
        let input = Input::new(&schema(), json!({"key": 42, "to": ["a", "b"]})).unwrap();
        assert_eq!(
            input.str("key"),
            Some("42"),
            "a rendered number where a string is wanted"
        );
        assert_eq!(input.strings("to"), vec!["a", "b"]);
        let input = Input::new(&schema(), json!({"key": " ", "when": "soon"})).unwrap_err();
        assert!(input.message.contains("with.when"), "{}", input.message);
        let input = Input::new(&schema(), json!({"key": " "})).unwrap();
        assert_eq!(
            input.required("key").unwrap_err().message,
            "with.key: must not be empty"
        );
    }
}

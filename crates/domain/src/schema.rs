//! The subset of JSON Schema that action inputs are described with, and its checker.
//!
//! One description serves three readers: `workflows schema` (editors), the UI's forms, and
//! `validate`/`apply`, which check a step's `with` against it here. A string holding a template
//! is only known at run time, so it passes any type, enum or format check.

use crate::workflow::DocError;
use serde_json::Value;

/// Checks `value` against `schema`; problems get paths relative to the checked value.
pub fn check(schema: &Value, value: &Value) -> Vec<DocError> {
    let mut out = Vec::new();
    check_at(schema, value, "", &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn problem(path: &str, message: impl Into<String>, out: &mut Vec<DocError>) {
    let path = if path.is_empty() { "(value)" } else { path };
    out.push(DocError {
        path: path.to_string(),
        message: message.into(),
    });
}

pub fn is_templated(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.contains("{{") || s.contains("{%"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, v: &Value) -> bool {
    let actual = type_name(v);
    expected == actual || (expected == "number" && actual == "integer")
}

fn check_at(schema: &Value, value: &Value, path: &str, out: &mut Vec<DocError>) {
    if is_templated(value) {
        return;
    }
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !names.is_empty() && !names.iter().any(|t| type_matches(t, value)) {
            return problem(
                path,
                format!("must be {}, not {}", names.join(" or "), type_name(value)),
                out,
            );
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return problem(path, format!("must be one of {}", list.join(", ")), out);
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("duration") {
        if let Err(e) = serde_json::from_value::<crate::Duration>(value.clone()) {
            return problem(path, e.to_string(), out);
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("uri") {
        if let Some(u) = value.as_str().filter(|u| !is_absolute_url(u)) {
            return problem(
                path,
                format!("{u:?} is not an absolute URL (write e.g. https://host/path)"),
                out,
            );
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if n < min {
            problem(path, format!("must be at least {min}"), out);
        }
    }
    match value {
        Value::Object(map) => check_object(schema, map, path, out),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_at(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// `scheme://host...`: enough to catch a missing scheme or a bare host name at save time.
fn is_absolute_url(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    scheme_ok && !host.is_empty() && !u.chars().any(char::is_whitespace)
}

fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<DocError>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (key, item) in map {
        match properties.and_then(|p| p.get(key)) {
            Some(sub) => check_at(sub, item, &join(path, key), out),
            None if closed => {
                let known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                problem(
                    &join(path, key),
                    format!("unknown input (known: {})", known.join(", ")),
                    out,
                );
            }
            None => {
                if let Some(extra) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                    check_at(extra, item, &join(path, key), out);
                }
            }
        }
    }
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if map.get(name).is_none_or(Value::is_null) {
            problem(&join(path, name), "required", out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(schema: &Value, v: Value) -> Vec<String> {
        check(schema, &v)
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    #[test]
    fn types_required_unknown_enum_and_formats() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["url"],
            "properties": {
                "url": {"type": "string"},
                "method": {"enum": ["GET", "POST"]},
                "timeout": {"format": "duration"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "to": {"type": "array", "items": {"type": "string"}},
                "count": {"type": "integer", "minimum": 1}
            }
        });
        assert_eq!(
            paths(
                &schema,
                json!({"method": "FETCH", "timeout": "soon", "hedaers": {}, "headers": {"a": 1},
                       "to": ["x", 2], "count": 0})
            ),
            vec![
                "count: must be at least 1",
                "headers.a: must be string, not integer",
                "hedaers: unknown input (known: count, headers, method, timeout, to, url)",
                "method: must be one of \"GET\", \"POST\"",
                "timeout: invalid duration \"soon\" (expected number at 0); write e.g. 30s, 10m, 1h30m",
                "to[1]: must be string, not integer",
                "url: required",
            ]
        );
    }

    #[test]
    fn uris_must_be_absolute() {
        let schema =
            json!({"type": "object", "properties": {"url": {"type": "string", "format": "uri"}}});
        for ok in [
            "https://hooks.slack.com/services/T/B/x",
            "http://127.0.0.1:9093",
            "http://h?q=1",
        ] {
            assert!(check(&schema, &json!({"url": ok})).is_empty(), "{ok}");
        }
        for bad in [
            "hooks.slack.com/services",
            "http://",
            "://x",
            "http://a b",
            "9093",
        ] {
            assert_eq!(
                paths(&schema, json!({"url": bad})),
                vec![format!(
                    "url: {bad:?} is not an absolute URL (write e.g. https://host/path)"
                )]
            );
        }
    }

    #[test]
    fn templates_pass_until_run_time() {
        let schema = json!({"type": "object", "properties": {
            "count": {"type": "integer"}, "method": {"enum": ["GET"]}}});
        assert!(check(&schema, &json!({"count": "{{ n }}", "method": "{{ m }}"})).is_empty());
    }
}

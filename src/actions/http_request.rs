//! `http.request`: calls an HTTP endpoint; the response status, headers and body are the output.

use super::http_util;
use super::*;
use alertflow_domain::Duration;
use std::time::Instant;

pub struct HttpRequest;

const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `expect_status`: one code, a list of codes, or absent (any 2xx).
fn status_expected(expect: Option<&Value>, status: u16) -> bool {
    match expect {
        None | Some(Value::Null) => (200..300).contains(&status),
        Some(Value::Array(codes)) => codes.iter().any(|c| c.as_u64() == Some(status as u64)),
        Some(code) => code.as_u64() == Some(status as u64),
    }
}

fn string_map(v: Option<&Value>, what: &str) -> Result<Vec<(String, String)>, ActionError> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect()),
        Some(_) => Err(ActionError::permanent(format!("{what} must be a mapping"))),
    }
}

#[async_trait]
impl Action for HttpRequest {
    fn name(&self) -> &'static str {
        "http.request"
    }

    fn inputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["url"],
            "properties": {
                "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                           "description": "Default POST with a payload, GET without."},
                "url": {"type": "string", "format": "uri"},
                "headers": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                "json": {"description": "Sent as the JSON body."},
                "body": {"type": "string", "description": "Sent as the body, as is."},
                "timeout": {"format": "duration", "description": "Default 30s."},
                "expect_status": {"type": ["integer", "array"], "items": {"type": "integer"},
                                  "description": "The codes that count as success (default any 2xx)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "status": {"type": "integer"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"description": "Parsed when the response is JSON, else a string."},
                "elapsed_ms": {"type": "integer"}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        if with.get("json").is_some() && with.get("body").is_some() {
            return vec![problem("body", "give either json or body, not both")];
        }
        vec![]
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        let url = input
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ActionError::permanent("url must be a string"))?;
        let has_payload = input.get("json").is_some() || input.get("body").is_some();
        let method = input
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or(if has_payload { "POST" } else { "GET" })
            .to_ascii_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| ActionError::permanent(format!("invalid method {method}")))?;
        let timeout = match input.get("timeout") {
            Some(t) => serde_json::from_value::<Duration>(t.clone())
                .map_err(|e| ActionError::permanent(format!("timeout: {e}")))?
                .as_std(),
            None => DEFAULT_TIMEOUT,
        };
        let headers = string_map(input.get("headers"), "headers")?;
        let query = string_map(input.get("query"), "query")?;
        let build = || {
            let mut req = ctx.clients.http.request(method.clone(), url);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            if !query.is_empty() {
                req = req.query(&query);
            }
            if let Some(json) = input.get("json") {
                req = req.json(json);
            } else if let Some(body) = input.get("body") {
                req = req.body(
                    body.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| body.to_string()),
                );
            }
            req
        };

        let started = Instant::now();
        // Transport errors say which (unreachable, TLS, timeout); a short 429 is waited out.
        let reply = http_util::send("http.request", timeout, build).await?;
        let status = reply.status;
        let retry_after = http_util::retry_after(&reply.headers);
        let headers: serde_json::Map<String, Value> = reply
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        // An empty body is "", as a text one would be.
        let body = match reply.body {
            Value::Null => Value::String(String::new()),
            b => b,
        };
        let output = serde_json::json!({
            "status": status,
            "headers": headers,
            "body": body,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        if !status_expected(input.get("expect_status"), status) {
            return Err(ActionError {
                message: format!(
                    "{url} answered {status}, expected {}",
                    input
                        .get("expect_status")
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "2xx".into())
                ),
                retryable: status >= 500 || status == 429 || status == 408,
                output: Some(output),
                retry_after,
            });
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expect_status_forms() {
        assert!(status_expected(None, 204));
        assert!(!status_expected(None, 404));
        assert!(status_expected(Some(&json!(404)), 404));
        assert!(status_expected(Some(&json!([200, 409])), 409));
    }

    #[test]
    fn check_catches_mistakes_at_save_time() {
        let registry = Registry::builtin();
        let errs = registry
            .check(
                "http.request",
                &json!({"method": "FETCH", "timeout": "soon", "json": {}, "body": "x", "hedaers": {}}),
            )
            .unwrap();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["hedaers", "method", "timeout", "url", "body"]);
        assert!(registry
            .check(
                "http.request",
                &json!({"url": "{{ trigger.x }}", "method": "{{ m }}"})
            )
            .unwrap()
            .is_empty());
    }
}

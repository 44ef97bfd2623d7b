//! `http.request`: calls an HTTP endpoint; the response status, headers and body are the output.

use super::*;
use alertflow_domain::Duration;
use std::time::Instant;

pub struct HttpRequest;

const INPUTS: &[&str] = &[
    "method",
    "url",
    "headers",
    "query",
    "json",
    "body",
    "timeout",
    "expect_status",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
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

    fn check(&self, with: &Value) -> Vec<DocError> {
        let mut out = known_inputs(with, INPUTS);
        out.extend(required(with, "url"));
        if let Some(m) = with.get("method").filter(|m| !is_templated(m)) {
            if !m
                .as_str()
                .is_some_and(|m| METHODS.contains(&m.to_ascii_uppercase().as_str()))
            {
                out.push(problem(
                    "method",
                    format!("unknown method {m} (one of {})", METHODS.join(", ")),
                ));
            }
        }
        if with.get("json").is_some() && with.get("body").is_some() {
            out.push(problem("body", "give either json or body, not both"));
        }
        if let Some(t) = with.get("timeout").filter(|t| !is_templated(t)) {
            if let Err(e) = serde_json::from_value::<Duration>(t.clone()) {
                out.push(problem("timeout", e.to_string()));
            }
        }
        for name in ["headers", "query"] {
            if let Some(v) = with.get(name).filter(|v| !is_templated(v)) {
                if !v.is_object() {
                    out.push(problem(name, "must be a mapping"));
                }
            }
        }
        out
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
        let mut req = ctx.clients.http.request(method, url).timeout(timeout);
        for (k, v) in string_map(input.get("headers"), "headers")? {
            req = req.header(k, v);
        }
        let query = string_map(input.get("query"), "query")?;
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

        let started = Instant::now();
        let resp = req.send().await.map_err(|e| {
            let e = e.without_url();
            ActionError::transient(format!("request to {url} failed: {e}"))
        })?;
        let status = resp.status().as_u16();
        let headers: serde_json::Map<String, Value> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        let is_json = headers
            .get("content-type")
            .and_then(Value::as_str)
            .is_some_and(|ct| ct.contains("json"));
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ActionError::transient(format!("reading the response of {url}: {e}")))?;
        let body = if is_json {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
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
        let errs = HttpRequest.check(
            &json!({"method": "FETCH", "timeout": "soon", "json": {}, "body": "x", "hedaers": {}}),
        );
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["hedaers", "url", "method", "body", "timeout"]);
        assert!(HttpRequest
            .check(&json!({"url": "{{ trigger.x }}", "method": "{{ m }}"}))
            .is_empty());
    }
}

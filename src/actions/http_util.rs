//! HTTP plumbing shared by the actions that call a service's API: one place that sends a
//! request, honours 429 + Retry-After, and turns every failure into an error that says which
//! kind it is (unreachable, TLS, timeout, 4xx, 5xx) and whether another attempt can help.

use super::ActionError;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// Default per-request timeout of the service actions (`timeout` input).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a request waits in place for a rate limit to pass; a longer Retry-After is
/// handed back to the engine as a transient error carrying `retry_after`.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(30);
/// Rate-limited attempts made in place before giving the wait back to the engine.
const MAX_INLINE_RETRIES: u32 = 3;

/// A response, read whole: bodies of these APIs are small.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// Parsed when it is JSON, else the text (or null when empty).
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `{status, body}`, kept as the failed step's output.
    pub fn record(&self) -> Value {
        json!({"status": self.status, "body": self.body})
    }

    /// The body as text, for services that answer in plain text.
    pub fn text(&self) -> String {
        match &self.body {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// A non-JSON body (a proxy's error page, say), trimmed and cut short, for messages.
    pub fn plain(&self) -> String {
        match &self.body {
            Value::String(s) => s.trim().chars().take(200).collect(),
            _ => String::new(),
        }
    }

    /// The error for an unexpected status: 5xx, 408 and 429 can succeed later, other 4xx
    /// cannot. `detail` is what the service said, in its own words.
    pub fn error(&self, service: &str, detail: &str) -> ActionError {
        let retryable = self.status >= 500 || self.status == 408 || self.status == 429;
        let kind = if self.status >= 500 {
            "server error"
        } else {
            "request rejected"
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        ActionError {
            message: format!("{service} {kind} (HTTP {}){detail}", self.status),
            retryable,
            output: Some(self.record()),
            retry_after: retry_after(&self.headers),
        }
    }
}

/// Sends the request `make` builds (again for each attempt), with `timeout` per attempt.
/// A 429 whose Retry-After fits within [`MAX_INLINE_WAIT`] (all waits added up) is retried
/// here after that delay; otherwise it comes back as a transient error with `retry_after`.
/// Any other status is returned as it is, for the action to judge.
pub async fn send(
    service: &str,
    timeout: Duration,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, ActionError> {
    let mut waited = Duration::ZERO;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let reply = send_once(service, timeout, make()).await?;
        if reply.status != 429 {
            return Ok(reply);
        }
        let wait = retry_after(&reply.headers);
        match wait {
            Some(d) if attempt <= MAX_INLINE_RETRIES && waited + d <= MAX_INLINE_WAIT => {
                tracing::info!(
                    service,
                    wait_ms = d.as_millis() as u64,
                    "rate limited; waiting as told by Retry-After"
                );
                waited += d;
                tokio::time::sleep(d).await;
            }
            _ => {
                let after = wait
                    .map(|d| format!("; Retry-After {}s", d.as_secs()))
                    .unwrap_or_default();
                return Err(ActionError {
                    message: format!("{service} rate limit (HTTP 429){after}"),
                    retryable: true,
                    output: Some(reply.record()),
                    retry_after: wait,
                });
            }
        }
    }
}

async fn send_once(
    service: &str,
    timeout: Duration,
    req: reqwest::RequestBuilder,
) -> Result<Reply, ActionError> {
    let (client, req) = req.timeout(timeout).build_split();
    let req = req.map_err(|e| {
        ActionError::permanent(format!("{service}: invalid request: {}", root_cause(&e)))
    })?;
    // Literal addresses never reach the resolver, which checks names.
    super::destinations::POLICY
        .try_with(|p| p.check_url(req.url()))
        .unwrap_or(Ok(()))?;
    let resp = client
        .execute(req)
        .await
        .map_err(|e| transport_error(service, timeout, e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let is_json = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    // A body error carries no URL of its own; the message names the host all the same.
    let url = resp.url().clone();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| transport_error(service, timeout, e.with_url(url)))?;
    let text = || Value::String(String::from_utf8_lossy(&bytes).into_owned());
    let body = if bytes.is_empty() {
        Value::Null
    } else if is_json {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| text())
    } else {
        text()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Names the failure without the URL, which may hold a secret (a Slack webhook path, say).
pub fn transport_error(service: &str, timeout: Duration, e: reqwest::Error) -> ActionError {
    let host = e
        .url()
        .and_then(|u| u.host_str().map(|h| format!(" {h}")))
        .unwrap_or_default();
    let cause = root_cause(&e);
    if is_tls(&e) {
        // A certificate that does not verify will not verify on the next attempt either.
        return ActionError::permanent(format!("{service}: TLS failure with{host}: {cause}"));
    }
    let message = if e.is_timeout() {
        format!(
            "{service}: timed out after {} waiting for{host}",
            alertflow_domain::Duration(timeout)
        )
    } else if e.is_connect() {
        format!("{service}: cannot connect to{host}: {cause}")
    } else if e.is_builder() {
        return ActionError::permanent(format!("{service}: invalid request: {cause}"));
    } else {
        format!("{service}: request to{host} failed: {cause}")
    };
    ActionError::transient(message)
}

/// Whether a rustls error sits in the chain (reqwest wraps it in io errors, whose `source`
/// skips the wrapped error itself, hence the `get_ref`).
pub fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if is_tls(inner) {
                    return true;
                }
            }
        }
        cur = err.source();
    }
    false
}

/// The innermost message of an error chain, the one that says what actually happened.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Retry-After as seconds or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `base` (an `api_url` input, with or without a trailing slash) joined with `path`.
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_as_seconds_or_a_date() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers(" 0 ")), Some(Duration::ZERO));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = retry_after(&headers(&httpdate::fmt_http_date(later))).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(retry_after(&headers(&past)), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn statuses_decide_what_is_retried() {
        let reply = |status| Reply {
            status,
            headers: HeaderMap::new(),
            body: json!({"error": "x"}),
        };
        for (status, retryable) in [
            (400, false),
            (401, false),
            (404, false),
            (408, true),
            (429, true),
            (500, true),
            (503, true),
        ] {
            let e = reply(status).error("Svc", "said no");
            assert_eq!(e.retryable, retryable, "{status}");
            assert!(
                e.message.contains(&format!("HTTP {status}")),
                "{}",
                e.message
            );
            assert!(e.message.contains("said no"), "{}", e.message);
            assert_eq!(e.output.unwrap()["body"]["error"], "x");
        }
        assert!(reply(502)
            .error("Svc", "")
            .message
            .starts_with("Svc server error"));
    }

    #[test]
    fn join_ignores_a_trailing_slash() {
        assert_eq!(join("http://h:1/", "/v2/x"), "http://h:1/v2/x");
        assert_eq!(join("http://h:1", "/v2/x"), "http://h:1/v2/x");
    }
}

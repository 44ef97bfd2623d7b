//! A small REST client for the commands; errors carry the server's message.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Every API call answers in well under this; a command that waits polls with many calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    timeout: Duration,
}

impl Client {
    pub fn new(server: &str, token: Option<String>, data_dir: &Path) -> Result<Client> {
        let token = match token {
            Some(t) => t,
            None => {
                let path = data_dir.join("admin-token");
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_string())
                    .with_context(|| {
                        format!(
                            "no admin token: pass --token or ALERTFLOW_TOKEN, or run beside the server's data dir ({} not readable)",
                            path.display()
                        )
                    })?
            }
        };
        Client::with_timeout(server, token, REQUEST_TIMEOUT)
    }

    /// A server that takes the connection and never answers (stopped, or wedged) gets an
    /// error naming it after `timeout`, rather than a command that hangs.
    fn with_timeout(server: &str, token: String, timeout: Duration) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .build()?;
        Ok(Client {
            http,
            base: server.trim_end_matches('/').to_string(),
            token,
            timeout,
        })
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, bytes::Bytes)> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() && !e.is_connect() {
                anyhow!(
                    "alertflow at {} took the request but did not answer within {}s",
                    self.base,
                    self.timeout.as_secs_f64()
                )
            } else {
                anyhow!(
                    "cannot reach alertflow at {}: {e}. Is `alertflow serve` running?",
                    self.base
                )
            }
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            bail!(describe_error(status, &bytes));
        }
        Ok((status, bytes))
    }

    pub async fn json(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Value> {
        let (_, bytes) = self.send(method, path, body).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.json(Method::GET, path, None).await
    }
}

fn describe_error(status: StatusCode, body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return format!(
            "server answered {status}: {}",
            String::from_utf8_lossy(body)
        );
    };
    let mut msg = v["message"].as_str().unwrap_or("(no message)").to_string();
    if let Some(details) = v["details"].as_array() {
        msg = format!("{}:", v["code"].as_str().unwrap_or("error"));
        for d in details {
            msg.push_str(&format!(
                "\n  {}: {}",
                d["path"].as_str().unwrap_or(""),
                d["message"].as_str().unwrap_or("")
            ));
        }
    }
    msg
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that completes connections (the kernel's backlog) but never reads them: the
    /// command fails with the server's address instead of waiting for ever.
    #[tokio::test]
    async fn a_server_that_never_answers_is_an_error_not_a_hang() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", silent.local_addr().unwrap());
        let client = Client::with_timeout(&base, "t".into(), Duration::from_millis(300)).unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), client.get("/workflows"));
        let err = answer
            .await
            .expect("the client gave up")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&base) && err.contains("did not answer within 0.3s"),
            "{err}"
        );
    }
}

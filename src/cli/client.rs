//! A small REST client for the commands; errors carry the server's message.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
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
        Ok(Client {
            http: reqwest::Client::new(),
            base: server.trim_end_matches('/').to_string(),
            token,
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
            anyhow!(
                "cannot reach alertflow at {}: {e}. Is `alertflow serve` running?",
                self.base
            )
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

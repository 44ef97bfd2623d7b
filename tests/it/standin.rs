//! Stand-ins for the services actions call: an HTTP server on 127.0.0.1:0 that records every
//! request and answers through a handler written like the real API; answers queued with
//! `queue` go first (a 429, a 503). And the helpers to run an action directly.

use alertflow::actions::{ActionContext, ActionError, Clients, Registry};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A request as the stand-in got it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn is_json(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    }
    /// `Authorization: Basic` decoded as (user, password).
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let b64 = self.header("authorization")?.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let (u, p) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(status: u16, v: Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string(),
        }
    }
    pub fn text(status: u16, s: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: s.into(),
        }
    }
    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: String::new(),
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Answer {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

pub struct StandIn {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    queued: Arc<Mutex<VecDeque<Answer>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StandIn {
    pub async fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> StandIn {
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let queued: Arc<Mutex<VecDeque<Answer>>> = Default::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, q) = (seen.clone(), queued.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (s, q, handler) = (s.clone(), q.clone(), handler.clone());
                async move {
                    let req = Seen {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        query: uri.query().unwrap_or_default().to_string(),
                        headers,
                        body,
                    };
                    s.lock().unwrap().push(req.clone());
                    let queued = q.lock().unwrap().pop_front();
                    let a = queued.unwrap_or_else(|| handler(&req));
                    let mut resp = axum::response::Response::new(axum::body::Body::from(a.body));
                    *resp.status_mut() = StatusCode::from_u16(a.status).unwrap();
                    for (k, v) in a.headers {
                        resp.headers_mut().insert(
                            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                            v.parse().unwrap(),
                        );
                    }
                    resp
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn {
            url,
            seen,
            queued,
            server,
        }
    }

    /// Answers the next request with `a`, before the handler sees any.
    pub fn queue(&self, a: Answer) {
        self.queued.lock().unwrap().push_back(a);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Runs one action as a step would, with `scope` as the template context (`alert`, ...).
pub async fn run_action_in(name: &str, input: Value, scope: Value) -> Result<Value, ActionError> {
    let registry = Registry::builtin().with_shell(true);
    let action = registry
        .get(name)
        .unwrap_or_else(|| panic!("no action {name}"));
    let clients = Clients {
        http: reqwest::Client::new(),
        destinations: Default::default(),
        jq: std::sync::Arc::new(alertflow::actions::jq_sandbox::Sandbox::new(
            env!("CARGO_BIN_EXE_alertflow").into(),
        )),
    };
    let trigger = scope["trigger"].clone().into();
    let ctx = ActionContext {
        clients: &clients,
        trigger: &trigger,
        scope: &scope,
    };
    action.run(input, &ctx).await
}

pub async fn run_action(name: &str, input: Value) -> Result<Value, ActionError> {
    run_action_in(name, input, json!({})).await
}

/// The save-time problems of `with` for action `name`, as "path: message".
pub fn save_time_problems(name: &str, with: Value) -> Vec<String> {
    use alertflow_domain::workflow::ActionCatalog;
    Registry::builtin()
        .check(name, &with)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

/// A loopback port with nothing listening (bound, then let go).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Accepts connections and never answers: requests to it time out.
pub async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (url, task)
}

pub use crate::engine::{run_manual as run_workflow, step};

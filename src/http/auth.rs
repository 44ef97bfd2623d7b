//! Who is asking and whether they may: roles, the route table, sessions and CSRF.
//!
//! Every `/api/v1` route is registered through [`route`] with the role it needs, so the router
//! and the table of roles are one list: a route cannot exist without a role. A request is
//! authenticated by an API token (`Authorization: Bearer`) or by the session cookie of the web
//! UI; a cookie-authenticated unsafe request must also carry the session's `X-CSRF-Token`.

use super::User;
use crate::crypto;
use crate::error::Error;
use crate::store::{AuditRecord, Identity};
use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;

/// Roles in order: each can do what the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything but secret values.
    Viewer,
    /// Also workflows, API keys, secrets and runs (cancel, replay, approve).
    Editor,
    /// Also users.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One row of the route table: an API route, its method, and the role it needs.
pub struct Route {
    pub method: Method,
    /// Under `/api/v1`.
    pub path: &'static str,
    pub role: Role,
    handler: MethodRouter<AppState>,
}

pub fn route<H, T>(method: Method, path: &'static str, role: Role, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Route {
        method,
        path,
        role,
        handler: axum::routing::on(filter, handler),
    }
}

/// The router of `/api/v1` built from the table, with the role check in front of every route.
pub fn router(state: &AppState, table: Vec<Route>) -> Router<AppState> {
    let mut roles = HashMap::new();
    let mut router = Router::new();
    for r in table {
        roles.insert((r.method.clone(), format!("/api/v1{}", r.path)), r.role);
        if r.method == Method::GET {
            roles.insert((Method::HEAD, format!("/api/v1{}", r.path)), r.role);
        }
        router = router.route(r.path, r.handler);
    }
    let roles = Arc::new(roles);
    router.route_layer(axum::middleware::from_fn_with_state(
        (state.clone(), roles),
        authorize,
    ))
}

type Roles = Arc<HashMap<(Method, String), Role>>;

async fn authorize(
    State((state, roles)): State<(AppState, Roles)>,
    req: Request,
    next: Next,
) -> Response {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    // Fail closed: a route missing from the table (which `router` makes impossible) is refused.
    let Some(&needed) = roles.get(&(req.method().clone(), matched.clone())) else {
        return Error::Forbidden(format!("no role is set for {} {matched}", req.method()))
            .into_response();
    };
    let who = match identify(&state, req.method(), req.headers()).await {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    if let Err(wait) = super::limits::take(&state.limits.api_per_user, &who.name) {
        return Error::TooManyRequests(
            format!("too many requests from {}; retry later", who.name),
            wait,
        )
        .into_response();
    }
    let role = Role::parse(&who.role).unwrap_or(Role::Viewer);
    if role < needed {
        return Error::Forbidden(format!(
            "{} {matched} needs the {} role; {} is {}",
            req.method(),
            needed.as_str(),
            who.name,
            role.as_str()
        ))
        .into_response();
    }
    let method = req.method().clone();
    // The path as the client sent it: this router is nested under /api/v1, which axum strips.
    let target = format!("/api/v1{}", req.uri().path());
    let actor = who.name.clone();
    let mut req = req;
    req.extensions_mut().insert(User(who.name.clone()));
    req.extensions_mut().insert(role);
    req.extensions_mut().insert(who);
    let resp = next.run(req).await;
    // The audit log: every change that took, and every key value shown.
    let audited = !is_safe(&method) || matched.ends_with("/keys/{name}/value");
    if audited && resp.status().is_success() {
        let entry = AuditRecord {
            at: crate::now_ms(),
            actor,
            action: format!("{method} {matched}"),
            target,
            detail: resp.extensions().get::<AuditDetail>().map(|d| d.0.clone()),
            status: resp.status().as_u16() as i64,
        };
        // The change is made already; a failure to record it is logged, not answered.
        if let Err(e) = state.store.audit(&entry).await {
            tracing::warn!(error = %e, action = %entry.action, actor = %entry.actor, "audit entry not written");
        }
    }
    resp
}

/// What a handler adds to its response for the audit log (the workflow and version applied,
/// the name of what was created).
#[derive(Clone, Debug)]
pub struct AuditDetail(pub String);

/// The user of a request: an API token, else the session cookie (with its CSRF check).
async fn identify(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Identity, Error> {
    if let Some(token) = bearer(headers) {
        let digest = crypto::digest(token);
        let who = state
            .store
            .token_identity(&digest)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let now = crate::now_ms();
        // last_used_at is for people, to the minute: spare a write per request.
        if who.last_used_at.is_none_or(|t| now - t > 60_000) {
            state.store.touch_token(&digest, now).await?;
        }
        return Ok(who);
    }
    let cookie = session_cookie(headers).ok_or(Error::Unauthenticated)?;
    let who = state
        .store
        .session_identity(&crypto::digest(cookie), crate::now_ms())
        .await?
        .ok_or(Error::Unauthenticated)?;
    if !is_safe(method) {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let expected = who.csrf.as_deref().unwrap_or("");
        if expected.is_empty() || !crypto::constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            return Err(Error::Forbidden(format!(
                "missing or wrong {CSRF_HEADER} header (a signed-in browser sends the token from GET /api/v1/session)"
            )));
        }
    }
    Ok(who)
}

pub const SESSION_COOKIE: &str = "alertflow_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The session cookie's value, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// `Set-Cookie` for a session: HttpOnly so scripts cannot read it, SameSite=Strict so other
/// sites cannot send it, Secure when the server is reached over https.
pub fn set_cookie(value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_named() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn finds_the_session_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; alertflow_session=xyz; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h), Some("xyz"));
        assert!(set_cookie("v", 10, true).ends_with("; Secure"));
        assert!(!set_cookie("v", 10, false).contains("Secure"));
    }
}

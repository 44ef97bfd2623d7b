//! Sign-in and sign-out, users (admins only), each user's own API tokens, and the document
//! schema the web UI builds its forms from.

use super::auth::{self, route, Role, Route};
use super::User;
use crate::crypto;
use crate::error::{Error, Result};
use crate::store::{Identity, SessionRecord, StoreError, TokenRecord, UserRecord};
use crate::{now_ms, rfc3339, AppState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// A session lasts a week; signing out or a password reset ends it sooner.
const SESSION_SECS: i64 = 7 * 24 * 3600;

pub fn routes() -> Vec<Route> {
    use Method as M;
    use Role::*;
    vec![
        route(M::GET, "/session", Viewer, current_session),
        route(M::DELETE, "/session", Viewer, sign_out),
        route(M::GET, "/schema", Viewer, schema),
        route(M::GET, "/tokens", Viewer, list_tokens),
        route(M::POST, "/tokens", Viewer, create_token),
        route(M::DELETE, "/tokens/{name}", Viewer, delete_token),
        route(M::GET, "/users", Admin, list_users),
        route(M::POST, "/users", Admin, create_user),
        route(M::PATCH, "/users/{name}", Admin, update_user),
        route(M::DELETE, "/users/{name}", Admin, delete_user),
    ]
}

#[derive(Deserialize)]
pub struct SignIn {
    name: String,
    password: String,
}

fn session_view(s: &AppState, who: &Identity) -> Value {
    json!({
        "user": who.name,
        "role": who.role,
        "csrf": who.csrf,
        "public_url": s.public_base,
    })
}

/// `POST /api/v1/session`, the one API route open to everyone: checks the password and sets
/// the session cookie.
#[utoipa::path(post, path = "/api/v1/session", tag = "users", security(()), request_body(content = Object, description = "{name, password}"), responses((status = 200, description = "sets the session cookie; {name, role, csrf}"), (status = 401), (status = 429)))]
pub(super) async fn sign_in(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Json(req): Json<SignIn>,
) -> Result<Response> {
    // Guessing passwords is slowed per source address and per user name.
    let keys = [
        super::limits::source_key("sign-in", Some(peer.ip())),
        format!("sign-in-user:{}", req.name),
    ];
    for key in &keys {
        if let Err(wait) = s.limits.sign_in_failures.check(key) {
            return Err(Error::TooManyRequests(
                "too many failed sign-ins; wait and try again".into(),
                wait,
            ));
        }
    }
    let user = match s.store.get_user(&req.name).await {
        Ok(u) => Some(u),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    // An unknown name costs the same hash as a wrong password, so timing does not tell
    // which names exist.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.with(|h| h.clone()));
    let password = req.password;
    let matches = tokio::task::spawn_blocking(move || crypto::verify_password(&hash, &password))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    let Some(user) = user.filter(|_| matches) else {
        for key in &keys {
            s.limits.sign_in_failures.spend(key);
        }
        return Err(Error::SignInFailed);
    };
    let value = crypto::random_token("afs_");
    let now = now_ms();
    let session = SessionRecord {
        digest: crypto::digest(&value),
        user_name: user.name.clone(),
        csrf: crypto::random_token(""),
        created_at: now,
        expires_at: now + SESSION_SECS * 1000,
    };
    s.store.create_session(&session).await?;
    let who = Identity {
        name: user.name,
        role: user.role,
        csrf: Some(session.csrf),
        last_used_at: None,
    };
    let cookie = auth::set_cookie(&value, SESSION_SECS, s.public_base.starts_with("https://"));
    Ok(([("set-cookie", cookie)], Json(session_view(&s, &who))).into_response())
}

thread_local! {
    static DUMMY_HASH: String = crypto::hash_password("no such user");
}

#[utoipa::path(get, path = "/api/v1/session", tag = "users", responses((status = 200, description = "{name, role, csrf}")))]
pub(super) async fn current_session(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
) -> Json<Value> {
    Json(session_view(&s, &who))
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "users", responses((status = 200)))]
pub(super) async fn sign_out(State(s): State<AppState>, headers: HeaderMap) -> Result<Response> {
    if let Some(cookie) = auth::session_cookie(&headers) {
        match s.store.delete_session(&crypto::digest(cookie)).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let expired = auth::set_cookie("", 0, s.public_base.starts_with("https://"));
    Ok((StatusCode::NO_CONTENT, [("set-cookie", expired)]).into_response())
}

#[utoipa::path(get, path = "/api/v1/schema", tag = "workflows", responses((status = 200, description = "the JSON Schema of the workflow document, as `alertflow workflows schema` prints it")))]
pub(super) async fn schema(State(s): State<AppState>) -> Json<Value> {
    Json(crate::cli::language::document_schema(&s.registry))
}

// --- users

fn user_view(u: &UserRecord) -> Value {
    json!({"name": u.name, "role": u.role, "created_at": rfc3339(u.created_at)})
}

fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "use 1 to 64 of letters, digits, '.', '_', '-' and '@'",
        ))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(Error::invalid("password", "at least 8 characters, please"));
    }
    Ok(())
}

fn parse_role(role: &str) -> Result<Role> {
    Role::parse(role).ok_or_else(|| {
        Error::invalid(
            "role",
            format!("{role:?} is not a role: admin, editor or viewer"),
        )
    })
}

async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || crypto::hash_password(&password))
        .await
        .map_err(|e| Error::Internal(e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, description = "[{name, role, created_at}]")))]
pub(super) async fn list_users(State(s): State<AppState>) -> Result<Json<Vec<Value>>> {
    Ok(Json(
        s.store.list_users().await?.iter().map(user_view).collect(),
    ))
}

#[derive(Deserialize)]
pub(super) struct NewUser {
    name: String,
    role: String,
    password: String,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body(content = Object, description = "{name, role, password}"), responses((status = 201), (status = 422)))]
pub(super) async fn create_user(
    State(s): State<AppState>,
    Json(req): Json<NewUser>,
) -> Result<Response> {
    check_user_name(&req.name)?;
    let role = parse_role(&req.role)?;
    check_password(&req.password)?;
    let user = UserRecord {
        name: req.name.clone(),
        role: role.as_str().to_string(),
        password_hash: hash(req.password).await?,
        created_at: now_ms(),
    };
    s.store.create_user(&user).await.map_err(|e| match e {
        StoreError::Conflict => {
            Error::invalid("name", format!("a user named {:?} exists", req.name))
        }
        e => e.into(),
    })?;
    Ok((StatusCode::CREATED, Json(user_view(&user))).into_response())
}

#[derive(Deserialize)]
pub(super) struct UserChange {
    role: Option<String>,
    /// A new password: an admin's reset.
    password: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), request_body(content = Object, description = "{role?, password?}"), responses((status = 200), (status = 404), (status = 409, description = "would leave no admin")))]
pub(super) async fn update_user(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<UserChange>,
) -> Result<Json<Value>> {
    let role = req.role.as_deref().map(parse_role).transpose()?;
    let password_hash = match req.password {
        Some(p) => {
            check_password(&p)?;
            Some(hash(p).await?)
        }
        None => None,
    };
    s.store
        .update_user(&name, role.map(Role::as_str), password_hash.as_deref())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => Error::NotFound(format!("no user {name:?}")),
            StoreError::State(m) => Error::invalid("role", m),
            e => e.into(),
        })?;
    Ok(Json(user_view(&s.store.get_user(&name).await?)))
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), responses((status = 204), (status = 404), (status = 409)))]
pub(super) async fn delete_user(
    State(s): State<AppState>,
    Extension(me): Extension<User>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    if me.0 == name {
        return Err(Error::Conflict(
            "you cannot delete yourself; another admin can".into(),
        ));
    }
    s.store.delete_user(&name).await.map_err(|e| match e {
        StoreError::NotFound => Error::NotFound(format!("no user {name:?}")),
        e => e.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

// --- the signed-in user's API tokens

fn token_view(t: &TokenRecord, value: Option<&str>) -> Value {
    let mut v = json!({
        "name": t.name,
        "created_at": rfc3339(t.created_at),
        "last_used_at": t.last_used_at.map(rfc3339),
    });
    if let Some(value) = value {
        v["value"] = json!(value);
    }
    v
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "users", responses((status = 200, description = "your tokens: [{name, created_at, last_used_at}]")))]
pub(super) async fn list_tokens(
    State(s): State<AppState>,
    Extension(me): Extension<User>,
) -> Result<Json<Vec<Value>>> {
    let tokens = s.store.list_tokens(&me.0).await?;
    Ok(Json(tokens.iter().map(|t| token_view(t, None)).collect()))
}

#[derive(Deserialize)]
pub(super) struct NewToken {
    name: String,
}

/// A token acts as its user, with the user's role; its value is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "users", request_body(content = Object, description = "{name}"), responses((status = 201, description = "{name, value} (shown once)"), (status = 422)))]
pub(super) async fn create_token(
    State(s): State<AppState>,
    Extension(me): Extension<User>,
    Json(req): Json<NewToken>,
) -> Result<Response> {
    check_user_name(&req.name)?;
    let value = crypto::random_token("aft_");
    let token = TokenRecord {
        user_name: me.0,
        name: req.name.clone(),
        digest: crypto::digest(&value),
        created_at: now_ms(),
        last_used_at: None,
    };
    s.store.create_token(&token).await.map_err(|e| match e {
        StoreError::Conflict => {
            Error::invalid("name", format!("you have a token named {:?}", req.name))
        }
        e => e.into(),
    })?;
    Ok((StatusCode::CREATED, Json(token_view(&token, Some(&value)))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "users", params(("name" = String, Path)), responses((status = 204), (status = 404)))]
pub(super) async fn delete_token(
    State(s): State<AppState>,
    Extension(me): Extension<User>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    s.store
        .delete_token(&me.0, &name)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => Error::NotFound(format!("you have no token {name:?}")),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

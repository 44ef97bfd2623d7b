//! HTTP: routes, the admin-token check, health and metrics. Handlers stay thin: they parse the
//! request, call into ingest/store, and shape the answer through `views`.

mod api;
mod hooks;
mod runs;
pub mod views;

use crate::crypto;
use crate::error::Error;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::time::Instant;

pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if state.config.ingress {
        app = app.route("/hooks/{workflow_id}", post(hooks::receive));
    }
    if state.config.api {
        let api = api::routes().layer(middleware::from_fn_with_state(state.clone(), require_admin));
        // The API's description is public, so tools can read it before they have a token.
        app = app
            .route("/api/v1/openapi.json", get(openapi))
            .nest("/api/v1", api)
            .merge(runs::public_routes());
    }
    app.layer(middleware::from_fn(access_log)).with_state(state)
}

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    axum::Json(api::ApiDoc::openapi())
}

async fn readyz(State(state): State<AppState>) -> Response {
    if *state.stopping.borrow() {
        return Error::Unavailable("shutting down".into()).into_response();
    }
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => Error::Unavailable(format!("store unreachable: {e}")).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return Error::Unauthenticated.into_response();
    };
    match state.store.token_user(&crypto::digest(token)).await {
        Ok(Some(user)) => {
            let mut req = req;
            req.extensions_mut().insert(User(user));
            next.run(req).await
        }
        Ok(None) => Error::Unauthenticated.into_response(),
        Err(e) => Error::from(e).into_response(),
    }
}

/// The signed-in user of an API request.
#[derive(Clone, Debug)]
pub struct User(pub String);

/// Logs method, path and status. The query string is left out: it may carry `x-api-key`.
async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    resp
}

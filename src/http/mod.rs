//! HTTP: routes, health and metrics, the web UI. Who may call what is in `auth`. Handlers stay
//! thin: they parse the request, call into ingest/store, and shape the answer through `views`.

mod api;
pub mod auth;
mod hooks;
pub mod limits;
mod runs;
mod ui;
mod users;
pub mod views;

use crate::error::Error;
use crate::AppState;
use axum::extract::{Request, State};
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
        let api = auth::router(&state, route_table());
        // The API's description is public, so tools can read it before they have a token;
        // signing in is how a browser gets one.
        app = app
            .route("/api/v1/openapi.json", get(openapi))
            .route("/api/v1/session", post(users::sign_in))
            .nest("/api/v1", api)
            .merge(runs::public_routes())
            .fallback(ui::serve);
    }
    app.layer(middleware::from_fn(access_log)).with_state(state)
}

/// Every `/api/v1` route with the role it needs; the router is built from this list.
pub fn route_table() -> Vec<auth::Route> {
    let mut table = api::routes();
    table.extend(runs::routes());
    table.extend(users::routes());
    table
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

//! `POST /hooks/{workflow_id}`: the trigger Alertmanager calls.

use crate::error::Error;
use crate::ingest::{self, Delivery};
use crate::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;

/// The trigger: answers 202 once the delivery is on disk.
#[utoipa::path(post, path = "/hooks/{workflow_id}", tag = "trigger",
    params(("workflow_id" = String, Path), ("x-api-key" = Option<String>, Query, description = "The API key (or X-API-Key, Bearer, or basic auth password)")),
    request_body(content = Object, description = "An Alertmanager v4 notification (prometheus trigger) or any JSON (webhook trigger)"),
    security(()),
    responses(
        (status = 202, body = crate::ingest::Accepted),
        (status = 400, body = crate::http::views::ErrorView, description = "not an Alertmanager v4 body"),
        (status = 401, body = crate::http::views::ErrorView), (status = 403, body = crate::http::views::ErrorView),
        (status = 404, body = crate::http::views::ErrorView), (status = 413, body = crate::http::views::ErrorView),
        (status = 415, body = crate::http::views::ErrorView), (status = 503, body = crate::http::views::ErrorView),
    ))]
pub async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(workflow_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if *state.stopping.borrow() {
        return Error::Unavailable("this node is shutting down; retry".into()).into_response();
    }
    // A source over its limit of refused deliveries (wrong keys, mostly) still gets through
    // with a valid key (several senders may share an address), but its refusals are no longer
    // recorded and are answered 503 with Retry-After: it slows down, and an Alertmanager whose
    // key was just rotated retries rather than drops.
    let source = super::limits::source_key("hook", Some(peer.ip()));
    // Checked before the body is read, so a flood costs little.
    if let Err(wait) = super::limits::take(&state.limits.deliveries_per_source, &source) {
        state.metrics.delivery("rate_limited");
        return Error::SlowDown(
            format!("too many deliveries from {}; retry later", peer.ip()),
            wait,
        )
        .into_response();
    }
    let over_limit = state.limits.hook_failures.check(&source).err();
    let limit = state.config.max_body_bytes;
    let declared_too_big = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > limit);
    let body = if declared_too_big {
        None
    } else {
        match axum::body::to_bytes(body, limit).await {
            Ok(b) => Some(b),
            Err(e) if is_length_limit(&e) => None,
            Err(e) => {
                return Error::BadRequest(format!("could not read the body: {e}")).into_response()
            }
        }
    };
    let delivery = Delivery {
        workflow_id,
        key: api_key(&uri, &headers),
        content_type: headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
        record_refusal: over_limit.is_none(),
    };
    match ingest::receive(&state, delivery).await {
        Ok(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        Err(e) if matches!(e.status().as_u16(), 401 | 403) => {
            state.limits.hook_failures.spend(&source);
            match over_limit {
                Some(wait) => Error::SlowDown(
                    format!(
                        "too many refused deliveries from {}; retry later",
                        peer.ip()
                    ),
                    wait,
                )
                .into_response(),
                None => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The key, from the first of: `?x-api-key=`, `X-API-Key`, `Authorization: Bearer`, or the
/// password of `Authorization: Basic` (Alertmanager's `http_config.basic_auth`).
fn api_key(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if let Some(q) = uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k.eq_ignore_ascii_case("x-api-key") {
                return Some(v.into_owned());
            }
        }
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = auth.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str, headers: &[(&str, &str)]) -> Option<String> {
        let uri: Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        api_key(&uri, &map)
    }

    #[test]
    fn the_four_key_forms() {
        assert_eq!(key("/hooks/a?x-api-key=k%2B1", &[]).as_deref(), Some("k+1"));
        assert_eq!(
            key("/hooks/a", &[("x-api-key", "k2")]).as_deref(),
            Some("k2")
        );
        assert_eq!(
            key("/hooks/a", &[("authorization", "Bearer k3")]).as_deref(),
            Some("k3")
        );
        // base64("alertmanager:k4")
        assert_eq!(
            key(
                "/hooks/a",
                &[("authorization", "Basic YWxlcnRtYW5hZ2VyOms0")]
            )
            .as_deref(),
            Some("k4")
        );
        assert_eq!(key("/hooks/a", &[]), None);
    }
}

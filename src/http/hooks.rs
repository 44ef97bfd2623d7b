//! `POST /hooks/{workflow_id}`: the trigger Alertmanager calls.

use crate::error::Error;
use crate::ingest::{self, Delivery};
use crate::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
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
    let body = match read_body(body, &headers, state.config.max_body_bytes).await {
        Ok(body) => body,
        Err(e) => {
            return Error::BadRequest(format!("could not read the body: {e}")).into_response()
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

/// How much of a body over the limit is read and dropped before the 413, and for how long.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The body, or `None` when it is over `limit`. A body over the limit is still read (and
/// dropped, up to `DRAIN_BYTES` and `DRAIN_TIME`) before the answer, as nginx's lingering close
/// does: a server that answers and closes while the sender is still writing resets the
/// connection, and the sender sees a broken pipe instead of the 413 that names the cause.
/// A sender that declared too much and waits for "100 Continue" has sent nothing yet; it is
/// answered at once (reading the body is what would send the 100).
async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Option<axum::body::Bytes>, axum::Error> {
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    let declared_too_big = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > limit);
    if declared_too_big {
        let waits_to_send = headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if waits_to_send {
            return Ok(None);
        }
    } else {
        // Borrowed, so that what is left can be drained when the limit is hit.
        match Limited::new(&mut body, limit).collect().await {
            Ok(collected) => return Ok(Some(collected.to_bytes())),
            Err(e) if e.is::<LengthLimitError>() => {}
            Err(e) => return Err(axum::Error::new(e)),
        }
    }
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    Ok(None)
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
    use futures_util::StreamExt;

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

    fn declaring(length: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, length.into());
        headers
    }

    fn chunked(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<&'static [u8], std::io::Error>> =
            chunks.iter().map(|c| Ok(*c)).collect();
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_is_kept_whole_under_the_limit_and_drained_over_it() {
        let body = read_body(chunked(&[b"{\"a\":", b"1}"]), &HeaderMap::new(), 7)
            .await
            .unwrap();
        assert_eq!(body.as_deref(), Some(&b"{\"a\":1}"[..]));
        // Over the limit: nothing kept, and every chunk read, so the answer is not a reset.
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = read.clone();
        let chunks = futures_util::stream::iter(0..4).map(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, std::io::Error>(vec![b'x'; 5])
        });
        let body = read_body(Body::from_stream(chunks), &HeaderMap::new(), 12)
            .await
            .unwrap();
        assert_eq!(body, None);
        assert_eq!(
            read.load(std::sync::atomic::Ordering::Relaxed),
            4,
            "every chunk was read"
        );
        // Declared too big: nothing kept either.
        assert_eq!(
            read_body(chunked(&[b"{}"]), &declaring(101), 100)
                .await
                .unwrap(),
            None
        );
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

//! The web UI: the single-page app's production build, embedded by `build.rs`, served with
//! cache headers (hashed assets forever, the page revalidated by ETag) and gzip.

use crate::error::Error;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// Paths that belong to the server, never to the app: an unknown one is a JSON 404.
const SERVER_PREFIXES: [&str; 4] = ["/api/", "/hooks/", "/approvals/", "/metrics"];

/// Vite puts content-hashed files here: their contents never change under one name.
const HASHED_DIR: &str = "assets/";

/// The fallback of the whole router: a file of the build, or the app's page for any other
/// path (the app routes in the browser).
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if SERVER_PREFIXES.iter().any(|p| path.starts_with(p)) || path == "/api" {
        return Error::NotFound(format!("no route {method} {path}")).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let wanted = path.trim_start_matches('/');
    let index = match find(wanted) {
        Some(i) => i,
        // A missing hashed file is an old page asking for a replaced build: a real 404.
        None if wanted.starts_with(HASHED_DIR) => return StatusCode::NOT_FOUND.into_response(),
        None => match find("index.html") {
            Some(i) => i,
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "the web UI is not built into this binary (web/dist is empty)",
                )
                    .into_response()
            }
        },
    };
    respond(index, &headers)
}

fn find(path: &str) -> Option<usize> {
    ASSETS.iter().position(|(p, _)| *p == path)
}

fn respond(index: usize, headers: &HeaderMap) -> Response {
    let (path, body) = ASSETS[index];
    let etag = &etags()[index];
    let mut out = HeaderMap::new();
    out.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    out.insert(ETAG, HeaderValue::from_str(etag).expect("hex"));
    out.insert(VARY, HeaderValue::from_static("accept-encoding"));
    let cache = if path.starts_with(HASHED_DIR) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    out.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if path == "index.html" {
        // The app needs nothing from elsewhere; React Flow sets inline styles.
        out.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"),
        );
        out.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
    }
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    let gzip_ok = headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if let (true, Some(gz)) = (gzip_ok, &gzipped()[index]) {
        out.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (out, gz.clone()).into_response();
    }
    (out, body).into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, body)| format!("\"{}\"", &hex::encode(Sha256::digest(body))[..20]))
            .collect()
    })
}

/// Each compressible file gzipped once, on first use; None where it would not pay.
fn gzipped() -> &'static [Option<bytes::Bytes>] {
    static GZIPPED: OnceLock<Vec<Option<bytes::Bytes>>> = OnceLock::new();
    GZIPPED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(path, body)| {
                let compressible = matches!(
                    path.rsplit('.').next(),
                    Some("html" | "js" | "mjs" | "css" | "svg" | "json" | "txt")
                );
                if !compressible || body.len() < 1024 {
                    return None;
                }
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(body).ok()?;
                enc.finish().ok().map(bytes::Bytes::from)
            })
            .collect()
    })
}

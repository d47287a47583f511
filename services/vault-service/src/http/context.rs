//! Per-request context: the request id (`x-request-id`), the access log line, and the
//! guarantee that every error answer — including axum's own rejections — has the contract's
//! error shape.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use tracing::Instrument as _;

use super::AppState;
use super::error::error_body;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The current request's id, inside a request; empty outside one.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The request id of the current request, as an extension for extractors.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn valid_client_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (1..=64).contains(&s.len()).then_some(())?;
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        .then(|| s.to_owned())
}

/// Assigns the request id, logs one line per request (route template, never the body or
/// query), and reshapes bare error answers.
pub async fn request_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(valid_client_id)
        .unwrap_or_else(|| state.new_request_id());
    req.extensions_mut().insert(RequestId(id.clone()));
    // A standard method's name, else `_OTHER`: a method token is whatever the client sent.
    let method = crate::telemetry::method_label(req.method());
    // Only the route template is logged (`/v1/pseudonyms/{p}`), never the path itself: a
    // caller could put anything in a path segment, an ID number included. Query strings and
    // bodies are never logged either. The request's span (exported only when traces are on)
    // holds the same allow-list: no path, query, header or body.
    let span = tracing::info_span!(
        "http.request",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        request_id = %id,
    );
    let res = REQUEST_ID
        .scope(id.clone(), async move {
            let res = next.run(req).await;
            reshape_error(res).await
        })
        .instrument(span.clone())
        .await;
    let mut res = res;
    let route = res
        .extensions()
        .get::<RouteTemplate>()
        .map(|r| r.0)
        .unwrap_or("unmatched");
    let plain_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if plain_json {
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let status = res.status().as_u16();
    let took = started.elapsed();
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    if !matches!(route, "unmatched" | "unknown") {
        crate::telemetry::rename_span(&span, format!("{method} {route}"));
    }
    if res.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    crate::telemetry::observe_request(method, route, status, took);
    tracing::info!(
        request_id = %id,
        method,
        route = %route,
        status,
        latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    res
}

/// The matched route template, carried from the routing layer to the access log line.
#[derive(Clone, Copy, Debug)]
pub struct RouteTemplate(pub &'static str);

/// Runs after routing (as a route layer): records which template matched.
pub async fn record_route(req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .and_then(|m| {
            super::ROUTES
                .iter()
                .find(|(_, path)| *path == m.as_str())
                .map(|(_, path)| *path)
        })
        .unwrap_or("unknown");
    let mut res = next.run(req).await;
    res.extensions_mut().insert(RouteTemplate(template));
    res
}

/// Error answers not produced by `ApiError` (unknown route, wrong method, body too large,
/// a panic caught by the runtime) get the contract's error shape too.
async fn reshape_error(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // Drain the original body (small: axum rejections are one line).
    let _ = body.collect().await;
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the body must be application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long"),
        s if s.is_server_error() => ("unavailable", "the service could not complete the request"),
        _ => ("bad_request", "the request could not be understood"),
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(error_body(code, message, None)))
}

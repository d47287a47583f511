//! Extractors: the authenticated caller, and JSON bodies whose errors name the field.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use vault_domain::DomainError;
use vault_domain::model::Actor;

use super::AppState;
use super::context::RequestId;
use super::error::ApiError;

/// The authenticated caller.
pub struct Authed(pub Actor);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or(DomainError::Unauthenticated)?;
        let principal = state.vault.authenticate(token).await?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(Authed(Actor {
            principal,
            request_id,
        }))
    }
}

/// A JSON body. Malformed JSON and unknown fields are 400; a well-formed body whose values
/// do not fit is 422 naming the field. No message echoes a value from the body.
pub struct JsonBody<T>(pub T);

/// Only names that look like field names (lowercase letters and `_`, no digits) are echoed
/// back; anything else could be data — a phone number sent as a key, say.
fn safe_name(s: &str) -> Option<&str> {
    (!s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .then_some(s)
}

/// The path without its last segment (`identity.x` → `identity`, `x` → ``).
fn parent(path: &str) -> String {
    match path.rfind('.') {
        Some(i) => path.get(..i).unwrap_or("").to_owned(),
        None => String::new(),
    }
}

fn between_backticks(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let rest = msg.get(start..)?;
    let end = rest.find('`')?;
    rest.get(..end)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() || path == "." {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

pub(crate) fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let inner = err.inner();
    use serde_json::error::Category;
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!(
                "the body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        ),
        Category::Data => {
            let msg = inner.to_string();
            if msg.starts_with("unknown field") {
                let name = between_backticks(&msg).and_then(safe_name);
                // serde_path_to_error already ends the path with the unknown key; echo it only
                // when it looks like a field name, else name its parent object.
                let field = match name {
                    Some(n) if path == n || path.ends_with(&format!(".{n}")) => path.clone(),
                    Some(n) => join(&path, n),
                    None => parent(&path),
                };
                if field.is_empty() {
                    ApiError::new(StatusCode::BAD_REQUEST, "unknown_field", "unknown field")
                } else {
                    ApiError::field(
                        StatusCode::BAD_REQUEST,
                        "unknown_field",
                        field,
                        "unknown field",
                    )
                }
            } else if msg.starts_with("duplicate field") {
                match between_backticks(&msg).and_then(safe_name) {
                    Some(n) => ApiError::field(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        join(&parent(&path), n),
                        "the key appears twice",
                    ),
                    None => ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        "a key appears twice",
                    ),
                }
            } else if msg.starts_with("missing field") {
                let name = between_backticks(&msg).unwrap_or("");
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "missing_field",
                    join(&path, name),
                    "this field is required",
                )
            } else if msg.starts_with("unknown variant") {
                let expected = msg
                    .find("expected ")
                    .and_then(|i| msg.get(i..))
                    .map(|s| s.split(" at line").next().unwrap_or(s).to_owned())
                    .unwrap_or_else(|| "a known value".to_owned());
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    path,
                    format!("unknown value; {expected}"),
                )
            } else {
                // "invalid type: string \"…\", expected …" would echo the value: keep only
                // what was expected.
                let expected = msg
                    .find("expected ")
                    .and_then(|i| msg.get(i..))
                    .map(|s| s.split(" at line").next().unwrap_or(s).to_owned())
                    .unwrap_or_else(|| "a different type".to_owned());
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    path,
                    format!("wrong type or value; {expected}"),
                )
            }
        }
    }
}

/// Parses a JSON byte slice with field-naming errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde's derive would fill a struct from a positional array; the contract's bodies are
    // objects, and so are their nested records.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if !value.is_object() {
            // Well-formed JSON of the wrong shape: 422, as for any other wrong type.
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "the body must be a JSON object",
            ));
        }
        for key in ["identity", "outcome", "reporter"] {
            if value
                .get(key)
                .is_some_and(|v| !(v.is_object() || v.is_null()))
            {
                return Err(ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    key,
                    "must be an object",
                ));
            }
        }
        if let Some(reports) = value.get("reports").and_then(|r| r.as_array())
            && reports.iter().any(|r| !r.is_object())
        {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "reports",
                "every report must be an object",
            ));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "trailing characters after the JSON body",
        )
    })?;
    Ok(value)
}

/// The raw bytes of a JSON body (content type and size checked), for handlers that also
/// hash the body (Idempotency-Key).
pub struct RawJson(pub Bytes);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let RawJson(bytes) = RawJson::from_request(req, state).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

impl FromRequest<AppState> for RawJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is over the limit",
                )
            } else if body_timed_out(&rej) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body did not arrive in time",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request body could not be read",
                )
            }
        })?;
        Ok(RawJson(bytes))
    }
}

/// Whether a body rejection was the body deadline running out.
fn body_timed_out(rej: &axum::extract::rejection::BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rej);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

//! The one mapping from domain errors to HTTP, and the error body of the contract:
//! `{"error": {"code", "message", "field"?}, "request_id"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vault_domain::DomainError;

use super::context::current_request_id;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human text; never a value from the request, never an internal detail on 5xx.
    pub message: String,
    /// The field at fault, dotted.
    pub field: Option<String>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// An error naming a field.
    pub fn field(
        status: StatusCode,
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
    request_id: String,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// Renders the contract's error body.
pub fn error_body(code: &str, message: &str, field: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&Body {
        error: Inner {
            code,
            message,
            field,
        },
        request_id: current_request_id(),
    })
    .unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = error_body(self.code, &self.message, self.field.as_deref());
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        use StatusCode as S;
        // Exhaustive on purpose: a new variant does not compile until its status is chosen.
        match e {
            DomainError::Invalid { field, reason } => {
                ApiError::field(S::UNPROCESSABLE_ENTITY, "invalid_field", field, reason)
            }
            DomainError::Unprocessable {
                code,
                field,
                message,
            } => ApiError {
                status: S::UNPROCESSABLE_ENTITY,
                code,
                message,
                field,
            },
            DomainError::Unauthenticated => ApiError::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                "a valid bearer token is required",
            ),
            DomainError::Forbidden { role, action } => ApiError::new(
                S::FORBIDDEN,
                "forbidden",
                format!("the {role} role may not {action}"),
            ),
            DomainError::NotFound { what } => {
                ApiError::new(S::NOT_FOUND, "not_found", format!("{what} not found"))
            }
            DomainError::Conflict { code, message } => ApiError::new(S::CONFLICT, code, message),
            DomainError::RateLimited => {
                ApiError::new(S::TOO_MANY_REQUESTS, "rate_limited", "too many requests")
            }
            DomainError::AuditUnavailable(cause) => {
                tracing::error!(error = %cause, "access trail append failed");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    "the access trail is unavailable; nothing was done",
                )
            }
            DomainError::KeyringUnavailable(cause) => {
                tracing::error!(error = %cause, "keyring unavailable");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "keyring_unavailable",
                    "the keyring is unavailable; nothing was done",
                )
            }
            DomainError::Integrity => {
                tracing::error!("a stored envelope failed its integrity check");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "integrity_failure",
                    "a stored record failed its integrity check; nothing was disclosed",
                )
            }
            DomainError::Store(vault_domain::ports::StoreError::Conflict(cause)) => {
                tracing::warn!(error = %cause, "write conflict");
                ApiError::new(
                    S::CONFLICT,
                    "concurrent_update",
                    "a concurrent request changed the same record; retry",
                )
            }
            DomainError::Store(cause) => {
                tracing::error!(error = %cause, "store failure");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; nothing was done",
                )
            }
        }
    }
}

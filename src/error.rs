//! The server's one error type, mapped once to a stable code and an HTTP status.
//!
//! Alertmanager retries 5xx and nothing else, so every transient fault is a 5xx and every 4xx is
//! something only the sender can fix.

use crate::store::StoreError;
use alertflow_domain::alertmanager::NotificationError;
use alertflow_domain::workflow::DocError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no API key: pass it as ?x-api-key=, the X-API-Key header, Authorization: Bearer, or basic auth password")]
    MissingKey,
    #[error("invalid API key")]
    WrongKey,
    #[error("API key {key:?} is not allowed for workflow {workflow:?} (trigger.api_keys)")]
    KeyNotAllowed { key: String, workflow: String },
    #[error("not signed in: sign in, or pass an API token as Authorization: Bearer TOKEN")]
    Unauthenticated,
    #[error("wrong user name or password")]
    SignInFailed,
    /// Input that names the fields at fault, for forms to show each next to its field.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<DocError>),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("body is over the limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("{0} alerts with split: per_alert; one delivery starts at most {1} runs")]
    TooManyAlerts(usize, usize),
    #[error("{0}")]
    NotJson(String),
    #[error("{0}")]
    NotAlertmanager(NotificationError),
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid workflow: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    InvalidWorkflow(Vec<DocError>),
    #[error("{0}")]
    WhenFailed(String),
    #[error("{0}")]
    Unavailable(String),
    /// Too many failures from one place: try again after the delay.
    #[error("{0}")]
    TooManyRequests(String, std::time::Duration),
    /// Like `Unavailable` (a 503, which Alertmanager retries), after a given delay.
    #[error("{0}")]
    SlowDown(String, std::time::Duration),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A 422 about one field.
    pub fn invalid(path: &str, message: impl Into<String>) -> Error {
        Error::Invalid(vec![DocError {
            path: path.to_string(),
            message: message.into(),
        }])
    }

    /// One table for code and status, so clients can rely on both.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        use Error::*;
        match self {
            MissingKey => ("missing_api_key", StatusCode::UNAUTHORIZED),
            WrongKey => ("invalid_api_key", StatusCode::UNAUTHORIZED),
            KeyNotAllowed { .. } => ("api_key_not_allowed", StatusCode::FORBIDDEN),
            Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED),
            SignInFailed => ("sign_in_failed", StatusCode::UNAUTHORIZED),
            Invalid(_) => ("invalid", StatusCode::UNPROCESSABLE_ENTITY),
            Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            Conflict(_) => ("conflict", StatusCode::CONFLICT),
            BodyTooLarge(_) => ("body_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            TooManyAlerts(..) => ("too_many_alerts", StatusCode::PAYLOAD_TOO_LARGE),
            NotJson(_) => ("not_json", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            NotAlertmanager(_) => ("not_alertmanager", StatusCode::BAD_REQUEST),
            BadRequest(_) => ("bad_request", StatusCode::BAD_REQUEST),
            InvalidWorkflow(_) => ("invalid_workflow", StatusCode::UNPROCESSABLE_ENTITY),
            WhenFailed(_) => ("when_failed", StatusCode::UNPROCESSABLE_ENTITY),
            Unavailable(_) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            TooManyRequests(..) => ("too_many_requests", StatusCode::TOO_MANY_REQUESTS),
            SlowDown(..) => ("rate_limited", StatusCode::SERVICE_UNAVAILABLE),
            Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code_and_status().1
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Error::NotFound("not found".into()),
            StoreError::Conflict => Error::Conflict("already exists".into()),
            StoreError::State(m) => Error::Conflict(m),
            StoreError::Unavailable(m) => Error::Unavailable(m),
            StoreError::Incompatible(m) => Error::Internal(m),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        // A sender held back by a rate limit is expected, and would flood the log.
        if status.is_server_error() && !matches!(self, Error::SlowDown(..)) {
            tracing::warn!(code, error = %self, "request failed");
        }
        let mut body = json!({"code": code, "message": self.to_string()});
        match &self {
            // `details` came first; `errors` is the shape every 422 shares.
            Error::InvalidWorkflow(errors) => {
                body["details"] = json!(errors);
                body["errors"] = json!(errors);
            }
            Error::Invalid(errors) => body["errors"] = json!(errors),
            Error::NotAlertmanager(e) => body["field"] = json!(e.field),
            _ => {}
        }
        let retry_after = match &self {
            Error::TooManyRequests(_, d) | Error::SlowDown(_, d) => Some(d.as_secs().max(1)),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(5),
            _ => None,
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from(secs));
        }
        resp
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Alertmanager retries 5xx only: a store fault must never look like the sender's fault.
    #[test]
    fn store_faults_are_retryable_and_sender_faults_are_not() {
        let unavailable = Error::from(StoreError::Unavailable("disk I/O error".into()));
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        let resp = unavailable.into_response();
        assert_eq!(resp.headers()["retry-after"], "5");
        for e in [
            Error::MissingKey,
            Error::WrongKey,
            Error::BodyTooLarge(1),
            Error::NotJson("x".into()),
        ] {
            assert!(e.status().is_client_error(), "{e}");
        }
    }
}

//! The one mapping from every error to an HTTP status and ZenML's error body,
//! `{"detail": ["<ExceptionClass>", "<message>"]}`.

use crate::connectors::engine::EngineError;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::crypto::CryptoError;
use crate::domain::DomainError;
use crate::domain::audit::AuditEvent;
use crate::store::{StoreError, Unique};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed or expired credentials: the client should log in again.
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: Duration,
    },
    /// An OAuth device-flow answer (`authorization_pending`, `expired_token`, …), which clients
    /// expect as `{"error": "<code>"}` with status 400.
    #[error("{0}")]
    DeviceFlow(&'static str),
    /// The cloud refused or failed a connector's request (ZenML's `AuthorizationException`):
    /// 401 without a `WWW-Authenticate` challenge, so clients do not log in again.
    #[error("{0}")]
    CloudAuthorization(String),
    /// Stored data failed its integrity check; the message says so (it reveals no secret).
    #[error("{0}")]
    Integrity(String),
    /// The database could not be reached or dropped the connection. The cause is logged; the
    /// client is told to try again, which ZenML's client does by itself.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A fault of the server. The cause is logged; the client sees only a generic message.
    #[error("internal error: {0}")]
    Internal(String),
    /// A refusal the audit log records (a failed login, implicit authentication refused): the
    /// record is written before the answer leaves, or the answer becomes an error.
    #[error("{error}")]
    Recorded {
        error: Box<ApiError>,
        record: Box<AuditEvent>,
    },
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn not_found(what: &str, reference: impl std::fmt::Display) -> ApiError {
        ApiError::NotFound(format!("Unable to find {what} '{reference}'"))
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }

    /// This error, with `record` written to the audit log before it is answered.
    pub fn recorded(self, record: AuditEvent) -> ApiError {
        ApiError::Recorded {
            error: Box::new(self),
            record: Box::new(record),
        }
    }

    pub(super) fn status_and_class(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Recorded { error, .. } => error.status_and_class(),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "CredentialsNotValid"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "KeyError"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "EntityExistsError"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "IllegalOperationError"),
            ApiError::BadRequest(_) | ApiError::DeviceFlow(_) => {
                (StatusCode::BAD_REQUEST, "ValueError")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ValueError"),
            ApiError::CloudAuthorization(_) => (StatusCode::UNAUTHORIZED, "AuthorizationException"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "ValueError"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "RuntimeError"),
            ApiError::Integrity(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "RuntimeError")
            }
        }
    }
}

/// An audit record a response carries to the audit middleware, which writes it before the
/// response is sent.
#[derive(Clone)]
pub struct ToRecord(pub AuditEvent);

/// Maps a violation of `names` (the store's constraints that keep these names apart) to
/// ZenML's 409 message, which names only the name itself; any other conflict is no taken name.
pub fn name_taken(
    action: &str,
    what: &str,
    name: &str,
    names: &'static [Unique],
) -> impl FnOnce(StoreError) -> ApiError {
    let message = format!(
        "Unable to {action} the requested {what} with name '{name}': Found another existing \
         {what} with the same name."
    );
    move |err| match err {
        err if err.violates(names) => ApiError::Conflict(message),
        other => other.into(),
    }
}

/// The error body for a status and message, as every error response carries it.
pub fn error_body(class: &str, message: &str) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "detail": [class, message] }))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Recorded { error, record } = self {
            let mut response = error.into_response();
            response.extensions_mut().insert(ToRecord(*record));
            return response;
        }
        if let ApiError::DeviceFlow(code) = self {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": code })),
            )
                .into_response();
        }
        let (status, class) = self.status_and_class();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "An internal error occurred; the server log has the details.".to_owned()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "the database is unavailable");
                "The database is unavailable at the moment; try again.".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (status, error_body(class, &message)).into_response();
        match &self {
            ApiError::Unauthenticated(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                let seconds = retry_after.as_secs().max(1).to_string();
                if let Ok(value) = HeaderValue::from_str(&seconds) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Invalid(message) => ApiError::BadRequest(message),
            EngineError::Cloud(message) => ApiError::CloudAuthorization(message),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Invalid(message) => ApiError::BadRequest(message),
            DomainError::Forbidden(message) => ApiError::Forbidden(message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => {
                ApiError::NotFound("Unable to find the requested record".into())
            }
            StoreError::Conflict(_) => {
                ApiError::Conflict("Another record with the same unique values exists.".into())
            }
            StoreError::Concurrent => ApiError::Conflict(
                "The record was changed by another request at the same time; try again.".into(),
            ),
            StoreError::Referenced(count) => ApiError::Forbidden(format!(
                "The record cannot be deleted: {count} others still use it."
            )),
            StoreError::ForeignKey(_) => ApiError::Conflict(
                "A record this request refers to was changed or deleted at the same time; try \
                 again."
                    .into(),
            ),
            StoreError::Corrupt(cause) => {
                tracing::error!(%cause, "a stored record does not parse");
                ApiError::Integrity(
                    "A stored record is corrupt; the server log has the details.".into(),
                )
            }
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            StoreError::InvalidValue(cause) => {
                ApiError::BadRequest(format!("A value in the request cannot be stored: {cause}"))
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<CryptoError> for ApiError {
    fn from(err: CryptoError) -> Self {
        match err {
            CryptoError::Store(store) => store.into(),
            CryptoError::KeyInUse(_) => ApiError::Forbidden(err.to_string()),
            CryptoError::UnknownKey(_) | CryptoError::NoSuchKey(_) => {
                ApiError::NotFound(err.to_string())
            }
            CryptoError::Tampered | CryptoError::Format => {
                tracing::error!(error = %err, "an encrypted value failed its integrity check");
                ApiError::Integrity(err.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => ApiError::Unprocessable(format!(
                "invalid request body: {}",
                std::error::Error::source(&e).map_or_else(|| e.body_text(), |s| s.to_string())
            )),
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::BadRequest("the request body is not valid JSON".into())
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
                "the request body must be JSON with Content-Type: application/json".into(),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge("the request body is too large".into())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Unprocessable(format!(
            "invalid query parameters: {}",
            rejection.body_text()
        ))
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        match rejection {
            FormRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge("the request body is too large".into())
            }
            other => ApiError::BadRequest(format!("invalid form: {}", other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::classify;

    /// A lost connection or a pool that cannot get one is worth retrying; ZenML's client
    /// retries a 503 by itself.
    #[test]
    fn an_unreachable_database_answers_503_with_retry_after() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for cause in [sqlx::Error::PoolTimedOut, sqlx::Error::Io(refused)] {
            let response = ApiError::from(classify(cause)).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        let other = ApiError::from(classify(sqlx::Error::ColumnNotFound("x".into())));
        assert_eq!(
            other.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}

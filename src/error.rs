//! The one error type of the service and its RFC 9457 rendering.
//!
//! Every failure a client can see is an [`Error`] with an HTTP status and a
//! stable machine-readable `code`; it is answered as
//! `application/problem+json`. Anything unexpected (database down, a bug)
//! becomes [`Error::internal`]: logged with its cause, answered as a bare 500
//! that reveals nothing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `Content-Type` of problem details (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem details object (RFC 9457) with Switchboard's `code` extension.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type: `urn:switchboard:problem:{code}`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code (`plan_limit_reached`, `not_found`, …).
    pub code: String,
    /// Per-field validation errors, when the input was at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Problem-specific members (e.g. `plan`, `limit`, `used`).
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extensions: Map<String, Value>,
}

/// One invalid input field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field (JSON pointer-like dotted path, or the parameter name).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The service's error. Construct with the helpers below. Boxed, so a
/// `Result` stays one pointer wide on the happy path.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: Option<String>,
    errors: Option<Vec<FieldError>>,
    extensions: Map<String, Value>,
    retry_after: Option<u64>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a status, code and title.
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Error {
        Error(Box::new(Inner {
            status,
            code,
            title,
            detail: None,
            errors: None,
            extensions: Map::new(),
            retry_after: None,
            headers: Vec::new(),
        }))
    }

    /// Adds an explanation of this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.0.detail = Some(detail.into());
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Error {
        self.0.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `Retry-After` (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Error {
        self.0.retry_after = Some(seconds);
        self
    }

    /// Adds a response header (e.g. `WWW-Authenticate`); a value that is not
    /// a valid header value is dropped.
    pub fn with_header(mut self, name: header::HeaderName, value: impl AsRef<str>) -> Error {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.0.headers.push((name, v));
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.0.code
    }

    /// Extension member `key`, if set.
    pub fn extension(&self, key: &str) -> Option<&Value> {
        self.0.extensions.get(key)
    }

    /// 404 `not_found`: the resource does not exist *for this caller*; another
    /// business's resources answer this too (SPEC §5, tenant isolation).
    pub fn not_found() -> Error {
        Error::new(StatusCode::NOT_FOUND, "not_found", "Resource not found")
    }

    /// 422 `validation_failed` with one field error.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Error {
        Error::validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// 422 `validation_failed` with field errors.
    pub fn validation(errors: Vec<FieldError>) -> Error {
        let mut e = Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "The request has invalid fields",
        );
        e.0.errors = Some(errors);
        e
    }

    /// 401 with a code: missing/invalid credentials.
    pub fn unauthorized(code: &'static str, detail: &str) -> Error {
        Error::new(StatusCode::UNAUTHORIZED, code, "Authentication required").with_detail(detail)
    }

    /// 403 `forbidden`: authenticated, but the policy does not allow it.
    pub fn forbidden() -> Error {
        Error::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed for this account",
        )
    }

    /// 409 with a code.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Error {
        Error::new(StatusCode::CONFLICT, code, "Conflict").with_detail(detail)
    }

    /// 500: logs `cause` with its location; the client learns nothing.
    #[track_caller]
    pub fn internal(cause: impl std::fmt::Display) -> Error {
        let location = std::panic::Location::caller();
        tracing::error!(%cause, %location, "internal error");
        Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        )
    }

    fn to_problem(&self) -> Problem {
        let e = &self.0;
        Problem {
            type_: format!("urn:switchboard:problem:{}", e.code),
            title: e.title.to_owned(),
            status: e.status.as_u16(),
            detail: e.detail.clone(),
            code: e.code.to_owned(),
            errors: e.errors.clone(),
            extensions: e.extensions.clone(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status.as_u16(), self.0.code)?;
        if let Some(d) = &self.0.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl IntoResponse for Error {
    fn into_response(mut self) -> Response {
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut response = (self.0.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.0.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in std::mem::take(&mut self.0.headers) {
            headers.insert(name, value);
        }
        response
    }
}

impl Error {
    /// A database error where a unique violation means a specific conflict:
    /// that becomes 409 `code` with `detail`; anything else converts as
    /// `From<DbErr>` does.
    #[track_caller]
    pub fn unique_violation_as(err: sea_orm::DbErr, code: &'static str, detail: &str) -> Error {
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
            return Error::conflict(code, detail.to_owned());
        }
        Error::from(err)
    }
}

impl From<sea_orm::DbErr> for Error {
    #[track_caller]
    fn from(err: sea_orm::DbErr) -> Error {
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
            return Error::conflict(
                "already_exists",
                "A resource with these values already exists",
            );
        }
        Error::internal(err)
    }
}

impl From<sea_orm::TransactionError<Error>> for Error {
    #[track_caller]
    fn from(err: sea_orm::TransactionError<Error>) -> Error {
        match err {
            sea_orm::TransactionError::Connection(e) => e.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}

//! Errors: the crate's [`Error`] for internal failures, and [`ApiError`], the JSON error a client sees.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Result with the collector's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Internal failures of the collector, by category.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the local write-ahead log failed.
    #[error("write-ahead log: {0}")]
    Wal(#[from] std::io::Error),
    /// The object store refused a read or a write.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Encoding or decoding Arrow data failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Writing Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A model's schema could not be built or inferred.
    #[error("schema: {0}")]
    Schema(String),
    /// A setting is missing or malformed, or what it names cannot be used (an unreachable
    /// bucket, a folder that cannot be created). The message names the setting.
    #[error("{0}")]
    Config(String),
}

/// Where in a request a bad value was found: the row (0-based) and the field.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Details {
    /// 0-based index of the offending record in the request (array index, NDJSON record, Arrow row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
    /// Field path, e.g. `features.age` or `prediction_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What the schema expects there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What the request held instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
}

/// The error a client sees: `{"error": {"code", "message", "details"}}` with an HTTP status.
///
/// `code` comes from a fixed set (it is also the `reason` label of the rejection counter), the
/// message is for people, and `details` locates the problem.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status sent with the error.
    pub status: StatusCode,
    /// Stable, machine-readable code, e.g. `wrong_type`.
    pub code: &'static str,
    /// One sentence for people.
    pub message: String,
    /// Row, field, expected and received value where they apply.
    pub details: Details,
    /// Seconds a client should wait before retrying (429 and 503 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a code and a message, and no details yet.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Details::default(), retry_after: None }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A value of the wrong type: 400 `wrong_type`, naming row, field, expected and got.
    pub fn wrong_type(row: usize, field: &str, expected: &str, got: impl Into<String>) -> Self {
        let got = got.into();
        Self::bad_request("wrong_type", format!("row {row}, field `{field}`: expected {expected}, got {got}"))
            .at(row, field)
            .expected_got(expected, got)
    }

    /// Attaches the row and field.
    pub fn at(mut self, row: usize, field: &str) -> Self {
        self.details.row = Some(row);
        self.details.field = Some(field.to_string());
        self
    }

    /// Attaches the field alone (errors about a whole column).
    pub fn field(mut self, field: &str) -> Self {
        self.details.field = Some(field.to_string());
        self
    }

    /// Attaches what was expected and what came.
    pub fn expected_got(mut self, expected: impl Into<String>, got: impl Into<String>) -> Self {
        self.details.expected = Some(expected.into());
        self.details.got = Some(got.into());
        self
    }

    /// 429 with a Retry-After, for a full buffer or queue.
    pub fn overloaded(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", message);
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// 500 for an internal failure; the message hides internals, the log keeps them.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

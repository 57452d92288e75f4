//! Request bodies to validated Arrow batches in the stored schema.
//!
//! Formats, chosen by `Content-Type`: `application/json` (one object, or an array of objects, or
//! objects one after another), `application/x-ndjson` / `application/jsonl` (one object per line),
//! and `application/vnd.apache.arrow.stream` (Arrow IPC stream, columns named as stored).
//! A request is decoded whole before anything is written: the first bad value rejects it all.

mod arrow_ipc;
mod json;

use arrow::record_batch::RecordBatch;

use crate::error::ApiError;
use crate::schema::ModelSchema;

/// A request body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON object, JSON array of objects, or concatenated/newline-delimited objects.
    Json,
    /// Arrow IPC stream.
    ArrowStream,
}

/// Media type of the Arrow IPC stream format.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

impl Format {
    /// The format a `Content-Type` names; absent means JSON.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, ApiError> {
        let Some(ct) = content_type else { return Ok(Format::Json) };
        let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "application/x-ndjson" | "application/ndjson" | "application/jsonl"
            | "application/json-seq" | "text/plain" | "" => Ok(Format::Json),
            ARROW_STREAM => Ok(Format::ArrowStream),
            _ => Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type `{media}` is not accepted; send application/json, application/x-ndjson or {ARROW_STREAM}"),
            )
            .expected_got("application/json, application/x-ndjson or ".to_string() + ARROW_STREAM, media)),
        }
    }
}

/// Which table a request writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Prediction records.
    Predictions,
    /// Label records.
    Labels,
}

impl Table {
    /// The table's directory name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Predictions => "predictions",
            Table::Labels => "labels",
        }
    }
}

/// What a decode needs besides the body: the schema and the arrival time (µs since the epoch),
/// which fills absent timestamps.
pub struct DecodeContext<'a> {
    /// The model's schema.
    pub schema: &'a ModelSchema,
    /// Arrival time of the request, µs since the epoch, UTC.
    pub now_us: i64,
}

/// Decodes and validates a body into one batch of the table's stored schema.
pub fn decode(cx: &DecodeContext<'_>, table: Table, format: Format, body: &[u8]) -> Result<RecordBatch, ApiError> {
    non_empty(match format {
        Format::Json => json::decode(cx, table, body)?,
        Format::ArrowStream => arrow_ipc::decode(cx, table, body)?,
    })
}

fn non_empty(batch: RecordBatch) -> Result<RecordBatch, ApiError> {
    if batch.num_rows() == 0 {
        return Err(empty());
    }
    Ok(batch)
}

fn empty() -> ApiError {
    ApiError::bad_request("empty", "the request holds no records")
}

/// Validates records already parsed (each a JSON object, as in a JSON body) into one batch of the
/// table's stored schema, with the same rules and messages as [`decode`].
pub fn decode_records(
    cx: &DecodeContext<'_>,
    table: Table,
    records: &[serde_json::Value],
) -> Result<RecordBatch, ApiError> {
    non_empty(json::decode_records(cx, table, records)?)
}

/// Validates Arrow batches built in this process (all of one schema, columns named as stored)
/// into one batch of the table's stored schema, with the rules and messages of the Arrow IPC
/// format.
pub fn decode_batches(cx: &DecodeContext<'_>, table: Table, batches: &[RecordBatch]) -> Result<RecordBatch, ApiError> {
    let Some(first) = batches.first() else { return Err(empty()) };
    non_empty(arrow_ipc::decode_batches(cx, table, &first.schema(), batches.iter().map(|b| Ok(b.clone())))?)
}

/// A new prediction id: a UUIDv7, so ids sort by creation time.
pub fn new_prediction_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Longest accepted `prediction_id`, in bytes.
pub const MAX_ID_LEN: usize = 128;

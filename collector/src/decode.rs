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

/// Longest accepted string value (a categorical or text feature, a label, a prediction, a model
/// version), in bytes. A value is one cell of a table that is scanned, grouped and profiled: a
/// longer one is almost always a mistake (a whole document in a category) and costs every reader.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Event times accepted at ingest, in microseconds since the Unix epoch: from
/// 1970-01-01T00:00:00Z up to, not including, 2200-01-01T00:00:00Z. Every reader of the store can
/// place such a time (DataFusion and pandas compute in nanoseconds, which end in 2262), and its
/// partition keeps a four-digit year.
pub const EVENT_TIMES_US: std::ops::Range<i64> = 0..7_258_118_400_000_000;

/// `us` if it lies in [`EVENT_TIMES_US`], else 400 `out_of_range` naming the row and the field.
pub(crate) fn event_time(us: i64, row: usize, field: &str) -> Result<i64, ApiError> {
    if EVENT_TIMES_US.contains(&us) {
        return Ok(us);
    }
    let got = chrono::DateTime::from_timestamp_micros(us)
        .map_or_else(|| format!("{us} µs since the epoch"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
    Err(out_of_range(row, field, got))
}

/// 400 `out_of_range` for an event time outside [`EVENT_TIMES_US`].
pub(crate) fn out_of_range(row: usize, field: &str, got: String) -> ApiError {
    let expected = "a time from 1970-01-01T00:00:00Z up to 2200-01-01T00:00:00Z";
    ApiError::bad_request("out_of_range", format!("row {row}, field `{field}`: expected {expected}, got {got}"))
        .at(row, field)
        .expected_got(expected, got)
}

/// `s` if it is at most [`MAX_VALUE_BYTES`] long, else 400 `value_too_large` naming the row and
/// the field.
pub(crate) fn bounded<'s>(s: &'s str, row: usize, field: &str) -> Result<&'s str, ApiError> {
    if s.len() <= MAX_VALUE_BYTES {
        return Ok(s);
    }
    let expected = format!("a string of at most {MAX_VALUE_BYTES} bytes");
    let got = format!("a string of {} bytes", s.len());
    Err(ApiError::bad_request("value_too_large", format!("row {row}, field `{field}`: expected {expected}, got {got}"))
        .at(row, field)
        .expected_got(expected, got))
}

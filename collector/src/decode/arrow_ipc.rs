//! Arrow IPC streams into the stored schema.
//!
//! Columns are matched by name. Accepted types: numerical and scores take any integer, float or
//! decimal type; categorical takes any string type, a dictionary of strings, integers or booleans;
//! text takes any string type; boolean takes Boolean; embeddings take a FixedSizeList of floats of
//! the declared length; `timestamp` takes any Timestamp unit (without a zone it is read as UTC).
//! `prediction_id`, `timestamp` and `model_version` may be absent or null and are then filled in as
//! for JSON. NaN and infinities are rejected.

use std::collections::HashSet;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, TimestampMicrosecondArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;

use super::{DecodeContext, MAX_ID_LEN, Table, new_prediction_id};
use crate::error::ApiError;
use crate::schema::{FeatureKind, ValueKind};

/// How a stored column may be filled from an input column.
#[derive(Clone, Copy, PartialEq)]
enum Rule {
    Id,
    Time,
    Version,
    Number,
    Category,
    Text,
    Bool,
    Vector,
    /// `received_at`: always the arrival time, never taken from the client.
    Arrival,
}

fn rules(cx: &DecodeContext<'_>, table: Table) -> Vec<(Rule, bool)> {
    let value_rule = |k: ValueKind| match k {
        ValueKind::Numerical => Rule::Number,
        ValueKind::Categorical => Rule::Category,
        ValueKind::Boolean => Rule::Bool,
    };
    match table {
        Table::Predictions => {
            let mut r = vec![(Rule::Id, true), (Rule::Time, true), (Rule::Version, true)];
            r.extend(cx.schema.features.iter().map(|f| {
                let rule = match f.kind {
                    FeatureKind::Numerical => Rule::Number,
                    FeatureKind::Categorical => Rule::Category,
                    FeatureKind::Text => Rule::Text,
                    FeatureKind::Boolean => Rule::Bool,
                    FeatureKind::Embedding => Rule::Vector,
                };
                (rule, f.nullable)
            }));
            r.push((value_rule(cx.schema.prediction), false));
            r.extend(cx.schema.scores.iter().map(|_| (Rule::Number, true)));
            r
        }
        Table::Labels => {
            vec![(Rule::Id, false), (value_rule(cx.schema.label), false), (Rule::Time, true), (Rule::Arrival, true)]
        }
    }
}

pub(super) fn decode(cx: &DecodeContext<'_>, table: Table, body: &[u8]) -> Result<RecordBatch, ApiError> {
    let bad_stream = |e: arrow::error::ArrowError| {
        ApiError::bad_request("malformed_arrow", format!("not a readable Arrow IPC stream: {e}"))
    };
    check_framing(body)
        .map_err(|m| ApiError::bad_request("malformed_arrow", format!("not a readable Arrow IPC stream: {m}")))?;
    // The framing is sound, so every allocation the reader makes is bounded by the body's size.
    // A panic left in the reader on some other inconsistency refuses the request, not the process.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let reader = StreamReader::try_new(Cursor::new(body), None).map_err(bad_stream)?;
        let schema = reader.schema();
        let batches: Vec<_> = reader.map(|b| b.map_err(bad_stream)).collect();
        Ok::<_, ApiError>((schema, batches))
    }));
    let (schema, batches) = read.map_err(|_| {
        ApiError::bad_request("malformed_arrow", "not a readable Arrow IPC stream: its buffers are inconsistent")
    })??;
    decode_batches(cx, table, &schema, batches)
}

/// Walks the stream's messages and checks that every declared length (metadata, body, each
/// buffer) lies within the bytes actually sent, before the reader allocates by those lengths:
/// a 248-byte stream must not make it reserve gigabytes. Compressed bodies are refused here too
/// (their buffers declare an uncompressed size the reader would allocate).
fn check_framing(body: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    let mut index = 0usize;
    let word = |at: usize| -> Option<i32> { Some(i32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?)) };
    loop {
        let Some(mut len) = word(at) else {
            // A stream may end without its end-of-stream marker.
            return if at == body.len() { Ok(()) } else { Err(format!("message {index}: truncated length prefix")) };
        };
        at += 4;
        if len == -1 {
            len = word(at).ok_or_else(|| format!("message {index}: truncated length prefix"))?;
            at += 4;
        }
        if len == 0 {
            return Ok(());
        }
        let remaining = body.len() - at;
        let meta_len = usize::try_from(len).map_err(|_| format!("message {index}: negative metadata length {len}"))?;
        if meta_len > remaining {
            return Err(format!("message {index}: declares {meta_len} bytes of metadata, {remaining} bytes follow"));
        }
        let message = arrow::ipc::root_as_message(&body[at..at + meta_len])
            .map_err(|e| format!("message {index}: malformed metadata: {e}"))?;
        at += meta_len;
        let remaining = body.len() - at;
        let body_len = usize::try_from(message.bodyLength()).ok().filter(|n| *n <= remaining).ok_or_else(|| {
            format!("message {index}: declares a body of {} bytes, {remaining} bytes follow", message.bodyLength())
        })?;
        let batch =
            message.header_as_record_batch().or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
        if let Some(batch) = batch {
            if batch.compression().is_some() {
                return Err(format!(
                    "message {index}: compressed bodies are not accepted; send the stream uncompressed"
                ));
            }
            for (i, buffer) in batch.buffers().into_iter().flatten().enumerate() {
                let end = u64::try_from(buffer.offset())
                    .ok()
                    .zip(u64::try_from(buffer.length()).ok())
                    .and_then(|(o, l)| o.checked_add(l));
                if end.is_none_or(|end| end > body_len as u64) {
                    return Err(format!(
                        "message {index}, buffer {i}: offset {} and length {} lie outside the body of {body_len} bytes",
                        buffer.offset(),
                        buffer.length()
                    ));
                }
            }
        }
        at += body_len;
        index += 1;
    }
}

/// Converts and validates batches of one input schema into one batch of the stored schema: the
/// rules of the Arrow IPC format, for batches that arrive some other way.
pub(super) fn decode_batches(
    cx: &DecodeContext<'_>,
    table: Table,
    input: &SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch, ApiError>>,
) -> Result<RecordBatch, ApiError> {
    let target = match table {
        Table::Predictions => cx.schema.predictions_schema(),
        Table::Labels => cx.schema.labels_schema(),
    };
    let rules = rules(cx, table);
    check_columns(input.clone(), &target, &rules)?;
    let mut out = Vec::new();
    let mut offset = 0;
    let mut seen_ids = HashSet::new();
    for batch in batches {
        let batch = batch?;
        out.push(convert(cx, &batch, &target, &rules, offset, table, &mut seen_ids)?);
        offset += batch.num_rows();
    }
    concat_batches(&target, &out).map_err(|e| ApiError::internal(&e))
}

fn check_columns(input: SchemaRef, target: &SchemaRef, rules: &[(Rule, bool)]) -> Result<(), ApiError> {
    for field in input.fields() {
        if target.field_with_name(field.name()).is_err() || field.name() == "received_at" {
            let known: Vec<&str> =
                target.fields().iter().map(|f| f.name().as_str()).filter(|n| *n != "received_at").collect();
            return Err(ApiError::bad_request(
                "unknown_field",
                format!("unknown column `{}`; expected columns among: {}", field.name(), known.join(", ")),
            )
            .expected_got(known.join(", "), field.name().clone())
            .field(field.name()));
        }
    }
    for (field, (rule, nullable)) in target.fields().iter().zip(rules) {
        let optional = *nullable || matches!(rule, Rule::Arrival);
        if !optional && input.field_with_name(field.name()).is_err() {
            return Err(ApiError::bad_request(
                "missing_field",
                format!("required column `{}` is missing", field.name()),
            )
            .field(field.name())
            .expected_got(field.data_type().to_string(), "nothing"));
        }
    }
    Ok(())
}

fn accepts(rule: Rule, t: &DataType, target: &DataType) -> bool {
    let is_string = |t: &DataType| match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
        _ => false,
    };
    match rule {
        Rule::Id | Rule::Version | Rule::Text => is_string(t),
        Rule::Time => matches!(t, DataType::Timestamp(_, _)),
        Rule::Number => t.is_numeric(),
        Rule::Category => is_string(t) || t.is_integer() || *t == DataType::Boolean,
        Rule::Bool => *t == DataType::Boolean,
        Rule::Vector => match (t, target) {
            (DataType::FixedSizeList(item, n), DataType::FixedSizeList(_, want)) => {
                n == want && item.data_type().is_floating()
            }
            _ => false,
        },
        Rule::Arrival => false,
    }
}

fn convert(
    cx: &DecodeContext<'_>,
    batch: &RecordBatch,
    target: &SchemaRef,
    rules: &[(Rule, bool)],
    offset: usize,
    table: Table,
    seen_ids: &mut HashSet<String>,
) -> Result<RecordBatch, ApiError> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for (field, &(rule, nullable)) in target.fields().iter().zip(rules) {
        let name = field.name();
        let input = if rule == Rule::Arrival { None } else { batch.column_by_name(name) };
        let column: ArrayRef = match input {
            None => match rule {
                Rule::Id => Arc::new(StringArray::from_iter_values((0..rows).map(|_| new_prediction_id()))),
                Rule::Time => Arc::new(TimestampMicrosecondArray::from_value(cx.now_us, rows).with_timezone("UTC")),
                // One microsecond apart, so the records of a request keep their order.
                Rule::Arrival => Arc::new(
                    TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| cx.now_us + (offset + i) as i64))
                        .with_timezone("UTC"),
                ),
                _ => arrow::array::new_null_array(field.data_type(), rows),
            },
            Some(col) => {
                if !accepts(rule, col.data_type(), field.data_type()) {
                    return Err(ApiError::bad_request(
                        "wrong_type",
                        format!("column `{name}`: expected {}, got {}", expected(rule, field), col.data_type()),
                    )
                    .field(name)
                    .expected_got(expected(rule, field), col.data_type().to_string()));
                }
                let cast_to = cast(col, field.data_type()).map_err(|e| {
                    ApiError::bad_request(
                        "wrong_type",
                        format!("column `{name}`: cannot convert {} to {}: {e}", col.data_type(), field.data_type()),
                    )
                    .field(name)
                })?;
                if rule == Rule::Time {
                    // A cast that overflows microseconds gives null: that row's time is out of range.
                    if let Some(i) = (0..col.len()).find(|&i| col.is_valid(i) && cast_to.is_null(i)) {
                        let got = format!("{} beyond what microseconds since the epoch can hold", col.data_type());
                        return Err(super::out_of_range(offset + i, name, got));
                    }
                }
                fill_and_check(cx, cast_to, rule, nullable, name, offset, table, seen_ids)?
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(target.clone(), columns).map_err(|e| ApiError::internal(&e))
}

fn expected(rule: Rule, field: &Field) -> String {
    match rule {
        Rule::Id | Rule::Version | Rule::Text => "a string column".into(),
        Rule::Time => "a Timestamp column".into(),
        Rule::Number => "a numeric column".into(),
        Rule::Category => "a string, integer or boolean column".into(),
        Rule::Bool => "a Boolean column".into(),
        Rule::Vector => format!("{} of floats", field.data_type()),
        Rule::Arrival => "nothing (set by the server)".into(),
    }
}

/// Fills nulls that have a default (ids, times), and rejects nulls where none may be, NaN and
/// infinities, over-long ids and repeated prediction ids.
#[allow(clippy::too_many_arguments)]
fn fill_and_check(
    cx: &DecodeContext<'_>,
    col: ArrayRef,
    rule: Rule,
    nullable: bool,
    name: &str,
    offset: usize,
    table: Table,
    seen_ids: &mut HashSet<String>,
) -> Result<ArrayRef, ApiError> {
    let at = |i: usize| offset + i;
    match rule {
        Rule::Id => {
            let ids = col.as_string::<i32>();
            let mut filled = Vec::with_capacity(ids.len());
            for i in 0..ids.len() {
                let id = if ids.is_null(i) {
                    if !nullable {
                        return Err(null_error(at(i), name));
                    }
                    new_prediction_id()
                } else {
                    let id = ids.value(i);
                    if id.is_empty() || id.len() > MAX_ID_LEN {
                        return Err(ApiError::wrong_type(
                            at(i),
                            name,
                            &format!("a non-empty string of at most {MAX_ID_LEN} bytes"),
                            format!("a string of {} bytes", id.len()),
                        ));
                    }
                    if table == Table::Predictions && !seen_ids.insert(id.to_string()) {
                        return Err(ApiError::bad_request(
                            "duplicate_id",
                            format!("row {}: prediction_id `{id}` appears twice in this request", at(i)),
                        )
                        .at(at(i), name)
                        .expected_got("an id unique within the request", id));
                    }
                    id.to_string()
                };
                filled.push(id);
            }
            Ok(Arc::new(StringArray::from(filled)))
        }
        Rule::Time => {
            let t = col.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            for (i, v) in t.iter().enumerate() {
                if let Some(us) = v {
                    super::event_time(us, at(i), name)?;
                }
            }
            if col.null_count() == 0 {
                return Ok(col);
            }
            Ok(Arc::new(
                t.iter()
                    .map(|v| Some(v.unwrap_or(cx.now_us)))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ))
        }
        _ => {
            if !nullable && col.null_count() > 0 {
                let i = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
                return Err(null_error(at(i), name));
            }
            let non_finite = match rule {
                Rule::Number => {
                    col.as_primitive::<Float64Type>().iter().position(|v| v.is_some_and(|x| !x.is_finite()))
                }
                Rule::Vector => {
                    let list = col.as_fixed_size_list();
                    let dim = list.value_length() as usize;
                    list.values()
                        .as_primitive::<Float32Type>()
                        .iter()
                        .position(|v| v.is_some_and(|x| !x.is_finite()))
                        .map(|p| p / dim)
                }
                _ => None,
            };
            if matches!(rule, Rule::Version | Rule::Category | Rule::Text) {
                let strings = col.as_string::<i32>();
                for (i, v) in strings.iter().enumerate() {
                    if let Some(v) = v {
                        super::bounded(v, at(i), name)?;
                    }
                }
            }
            if let Some(i) = non_finite {
                return Err(ApiError::bad_request(
                    "non_finite",
                    format!(
                        "row {}, column `{name}`: NaN and infinities are not accepted; send null for a missing value",
                        at(i)
                    ),
                )
                .at(at(i), name)
                .expected_got("a finite number or null", "NaN or infinity"));
            }
            Ok(col)
        }
    }
}

fn null_error(row: usize, name: &str) -> ApiError {
    ApiError::bad_request("missing_field", format!("row {row}: required column `{name}` is null"))
        .at(row, name)
        .expected_got("a value", "null")
}

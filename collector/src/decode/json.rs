//! JSON, JSON arrays and NDJSON into Arrow.
//!
//! Coercions (documented in `docs/ingest.md`): numerical accepts any JSON number; categorical
//! accepts strings, integers and booleans (as their text); text accepts strings; boolean accepts
//! `true`/`false` and the integers 0 and 1; embeddings accept an array of exactly `dim` numbers.
//! `null` or an absent key is a missing value where the feature is nullable. JSON has no NaN or
//! infinity, and serde_json refuses numbers beyond f64's range, so every number here is finite. Timestamps are RFC 3339
//! strings or Unix epoch seconds (a number, fractions allowed).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use super::{DecodeContext, MAX_ID_LEN, Table, bounded, event_time, new_prediction_id};
use crate::error::ApiError;
use crate::schema::{FeatureConfig, FeatureKind, ValueKind};

/// Parses the body into records: a top-level array's elements, or a sequence of objects.
fn records(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let mut values = Vec::new();
    let mut whole_array = false;
    let stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    for (i, value) in stream.enumerate() {
        let value = value.map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("malformed JSON at line {}, column {}: {e}", e.line(), e.column()),
            )
        })?;
        match value {
            Value::Array(items) if i == 0 => {
                whole_array = true;
                values = items;
            }
            _ if whole_array || matches!(value, Value::Array(_)) => {
                return Err(ApiError::bad_request("malformed_json", "an array of records must be the whole body"));
            }
            other => values.push(other),
        }
    }
    Ok(values)
}

pub(super) fn decode(cx: &DecodeContext<'_>, table: Table, body: &[u8]) -> Result<RecordBatch, ApiError> {
    decode_records(cx, table, &records(body)?)
}

pub(super) fn decode_records(cx: &DecodeContext<'_>, table: Table, rows: &[Value]) -> Result<RecordBatch, ApiError> {
    match table {
        Table::Predictions => predictions(cx, rows),
        Table::Labels => labels(cx, rows),
    }
}

/// A short description of a JSON value for error messages, without echoing large inputs.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => format!("string \"{}…\"", s.chars().take(40).collect::<String>()),
        Value::String(s) => format!("string \"{s}\""),
        Value::Array(a) => format!("array of {} items", a.len()),
        Value::Object(_) => "object".into(),
    }
}

fn as_object<'v>(v: &'v Value, row: usize) -> Result<&'v Map<String, Value>, ApiError> {
    v.as_object().ok_or_else(|| {
        ApiError::bad_request("wrong_type", format!("row {row}: expected a JSON object, got {}", describe(v)))
            .at(row, "")
            .expected_got("object", describe(v))
    })
}

/// One column under construction.
enum Column {
    F64(Float64Builder),
    Str(StringBuilder),
    Bool(BooleanBuilder),
    Embedding(FixedSizeListBuilder<Float32Builder>, usize),
}

/// What a column accepts, for coercion and messages.
#[derive(Clone, Copy)]
enum Accepts {
    Number,
    Category,
    Text,
    Bool,
    Vector(usize),
}

impl Accepts {
    fn of_feature(f: &FeatureConfig) -> Self {
        match f.kind {
            FeatureKind::Numerical => Accepts::Number,
            FeatureKind::Categorical => Accepts::Category,
            FeatureKind::Text => Accepts::Text,
            FeatureKind::Boolean => Accepts::Bool,
            FeatureKind::Embedding => Accepts::Vector(f.dim.unwrap_or(1)),
        }
    }

    fn of_value(kind: ValueKind) -> Self {
        match kind {
            ValueKind::Numerical => Accepts::Number,
            ValueKind::Categorical => Accepts::Category,
            ValueKind::Boolean => Accepts::Bool,
        }
    }

    fn expected(self) -> String {
        match self {
            Accepts::Number => "a finite number".into(),
            Accepts::Category => "a string, an integer or a boolean".into(),
            Accepts::Text => "a string".into(),
            Accepts::Bool => "true, false, 0 or 1".into(),
            Accepts::Vector(dim) => format!("an array of {dim} numbers"),
        }
    }

    fn builder(self, capacity: usize) -> Column {
        match self {
            Accepts::Number => Column::F64(Float64Builder::with_capacity(capacity)),
            Accepts::Category | Accepts::Text => Column::Str(StringBuilder::with_capacity(capacity, capacity * 8)),
            Accepts::Bool => Column::Bool(BooleanBuilder::with_capacity(capacity)),
            Accepts::Vector(dim) => Column::Embedding(
                FixedSizeListBuilder::with_capacity(
                    Float32Builder::with_capacity(capacity * dim),
                    dim as i32,
                    capacity,
                ),
                dim,
            ),
        }
    }
}

impl Column {
    fn append_null(&mut self) {
        match self {
            Column::F64(b) => b.append_null(),
            Column::Str(b) => b.append_null(),
            Column::Bool(b) => b.append_null(),
            Column::Embedding(b, dim) => {
                b.values().append_nulls(*dim);
                b.append(false);
            }
        }
    }

    /// Appends `v`, coerced as `accepts` says, or names what is wrong. `null` is handled by the
    /// caller. The field's name is only spelled out for an error.
    fn append(&mut self, accepts: Accepts, v: &Value, row: usize, field: impl Fn() -> String) -> Result<(), ApiError> {
        let wrong = || ApiError::wrong_type(row, &field(), &accepts.expected(), describe(v));
        match (self, v) {
            (Column::F64(b), Value::Number(n)) => b.append_value(n.as_f64().ok_or_else(wrong)?),
            (Column::Str(b), Value::String(s)) => b.append_value(bounded(s, row, &field())?),
            (Column::Str(b), Value::Number(n))
                if matches!(accepts, Accepts::Category) && (n.is_i64() || n.is_u64()) =>
            {
                b.append_value(n.to_string())
            }
            (Column::Str(b), Value::Bool(x)) if matches!(accepts, Accepts::Category) => {
                b.append_value(if *x { "true" } else { "false" })
            }
            (Column::Bool(b), Value::Bool(x)) => b.append_value(*x),
            (Column::Bool(b), Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                b.append_value(n.as_u64() == Some(1))
            }
            (Column::Embedding(b, dim), Value::Array(items)) => {
                if items.len() != *dim {
                    return Err(ApiError::wrong_type(
                        row,
                        &field(),
                        &accepts.expected(),
                        format!("an array of {} items", items.len()),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    let x = item.as_f64().ok_or_else(|| {
                        ApiError::wrong_type(row, &format!("{}[{i}]", field()), "a finite number", describe(item))
                    })?;
                    b.values().append_value(x as f32);
                }
                b.append(true);
            }
            _ => return Err(wrong()),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::F64(b) => Arc::new(b.finish()),
            Column::Str(b) => Arc::new(b.finish()),
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Embedding(b, _) => Arc::new(b.finish()),
        }
    }
}

fn missing(row: usize, field: &str, expected: &str) -> ApiError {
    ApiError::bad_request("missing_field", format!("row {row}: required field `{field}` is missing"))
        .at(row, field)
        .expected_got(expected, "nothing")
}

/// Parses an event time: RFC 3339 text, or Unix epoch seconds.
fn timestamp_us(v: &Value, row: usize, field: &str) -> Result<i64, ApiError> {
    let expected = "an RFC 3339 time (e.g. \"2026-11-25T13:00:00Z\") or Unix epoch seconds";
    let us = match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_micros()),
        // Seconds beyond i64's microseconds saturate, and are then refused as out of range.
        Value::Number(n) => n.as_f64().filter(|s| s.is_finite()).map(|s| (s * 1e6).round() as i64),
        _ => None,
    };
    event_time(us.ok_or_else(|| ApiError::wrong_type(row, field, expected, describe(v)))?, row, field)
}

fn prediction_id<'v>(v: Option<&'v Value>, row: usize) -> Result<Option<&'v str>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => Ok(Some(s)),
        Some(other) => Err(ApiError::wrong_type(
            row,
            "prediction_id",
            &format!("a non-empty string of at most {MAX_ID_LEN} bytes"),
            describe(other),
        )),
    }
}

fn predictions(cx: &DecodeContext<'_>, rows: &[Value]) -> Result<RecordBatch, ApiError> {
    let schema = cx.schema;
    let n = rows.len();
    let mut ids = StringBuilder::with_capacity(n, n * 36);
    let mut times = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut versions = StringBuilder::with_capacity(n, n * 4);
    let accepts: Vec<Accepts> = schema.features.iter().map(Accepts::of_feature).collect();
    let mut features: Vec<Column> = accepts.iter().map(|a| a.builder(n)).collect();
    let prediction_accepts = Accepts::of_value(schema.prediction);
    let mut prediction = prediction_accepts.builder(n);
    let mut scores: Vec<Float64Builder> = schema.scores.iter().map(|_| Float64Builder::with_capacity(n)).collect();
    let feature_index: std::collections::HashMap<&str, usize> =
        schema.features.iter().enumerate().map(|(i, f)| (f.name.as_str(), i)).collect();
    let mut seen_ids: HashSet<&str> = HashSet::new();
    let mut present = vec![false; features.len()];

    for (row, value) in rows.iter().enumerate() {
        let record = as_object(value, row)?;
        for key in record.keys() {
            if !matches!(
                key.as_str(),
                "prediction_id" | "timestamp" | "model_version" | "features" | "prediction" | "scores"
            ) {
                return Err(unknown_field(
                    row,
                    key,
                    "prediction_id, timestamp, model_version, features, prediction, scores",
                ));
            }
        }
        match prediction_id(record.get("prediction_id"), row)? {
            Some(id) => {
                if !seen_ids.insert(id) {
                    return Err(ApiError::bad_request(
                        "duplicate_id",
                        format!("row {row}: prediction_id `{id}` appears twice in this request"),
                    )
                    .at(row, "prediction_id")
                    .expected_got("an id unique within the request", id));
                }
                ids.append_value(id);
            }
            None => ids.append_value(new_prediction_id()),
        }
        times.append_value(match record.get("timestamp") {
            None | Some(Value::Null) => cx.now_us,
            Some(v) => timestamp_us(v, row, "timestamp")?,
        });
        match record.get("model_version") {
            None | Some(Value::Null) => versions.append_null(),
            Some(Value::String(s)) => versions.append_value(bounded(s, row, "model_version")?),
            Some(other) => return Err(ApiError::wrong_type(row, "model_version", "a string", describe(other))),
        }

        let feature_values = match record.get("features") {
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(ApiError::wrong_type(row, "features", "an object of feature values", describe(other)));
            }
            None => return Err(missing(row, "features", "an object of feature values")),
        };
        present.fill(false);
        for (key, v) in feature_values {
            let Some(&i) = feature_index.get(key.as_str()) else {
                let known: Vec<&str> = schema.features.iter().map(|f| f.name.as_str()).collect();
                return Err(unknown_field(row, &format!("features.{key}"), &known.join(", ")));
            };
            present[i] = true;
            let field = || format!("features.{key}");
            if v.is_null() {
                if !schema.features[i].nullable {
                    return Err(missing(row, &field(), &accepts[i].expected()));
                }
                features[i].append_null();
            } else {
                features[i].append(accepts[i], v, row, field)?;
            }
        }
        for (i, was_present) in present.iter().enumerate() {
            if !was_present {
                if !schema.features[i].nullable {
                    return Err(missing(row, &format!("features.{}", schema.features[i].name), &accepts[i].expected()));
                }
                features[i].append_null();
            }
        }

        match record.get("prediction") {
            None | Some(Value::Null) => return Err(missing(row, "prediction", &prediction_accepts.expected())),
            Some(v) => {
                prediction.append(prediction_accepts, v, row, || "prediction".into())?;
            }
        }

        match record.get("scores") {
            None | Some(Value::Null) => scores.iter_mut().for_each(|b| b.append_null()),
            Some(Value::Object(map)) => {
                for key in map.keys() {
                    if !schema.scores.iter().any(|c| c == key) {
                        return Err(unknown_field(row, &format!("scores.{key}"), &schema.scores.join(", ")));
                    }
                }
                for (class, b) in schema.scores.iter().zip(&mut scores) {
                    append_score(b, map.get(class), row, || format!("scores.{class}"))?;
                }
            }
            Some(Value::Array(items)) if items.len() == schema.scores.len() => {
                for (i, (item, b)) in items.iter().zip(&mut scores).enumerate() {
                    append_score(b, Some(item), row, || format!("scores[{i}]"))?;
                }
            }
            Some(other) => {
                let expected = format!(
                    "an object keyed by class ({}) or an array of {} numbers",
                    schema.scores.join(", "),
                    schema.scores.len()
                );
                return Err(ApiError::wrong_type(row, "scores", &expected, describe(other)));
            }
        }
    }

    let mut columns: Vec<ArrayRef> =
        vec![Arc::new(ids.finish()), Arc::new(times.finish()), Arc::new(versions.finish())];
    columns.extend(features.iter_mut().map(Column::finish));
    columns.push(prediction.finish());
    columns.extend(scores.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    RecordBatch::try_new(schema.predictions_schema(), columns).map_err(|e| ApiError::internal(&e))
}

fn append_score(
    b: &mut Float64Builder,
    v: Option<&Value>,
    row: usize,
    field: impl Fn() -> String,
) -> Result<(), ApiError> {
    match v {
        None | Some(Value::Null) => b.append_null(),
        Some(v @ Value::Number(_)) => {
            b.append_option(v.as_f64());
        }
        Some(other) => return Err(ApiError::wrong_type(row, &field(), "a finite number", describe(other))),
    }
    Ok(())
}

fn unknown_field(row: usize, field: &str, known: &str) -> ApiError {
    ApiError::bad_request("unknown_field", format!("row {row}: unknown field `{field}`; expected one of: {known}"))
        .at(row, field)
        .expected_got(format!("one of: {known}"), field.to_string())
}

fn labels(cx: &DecodeContext<'_>, rows: &[Value]) -> Result<RecordBatch, ApiError> {
    let n = rows.len();
    let mut ids = StringBuilder::with_capacity(n, n * 36);
    let accepts = Accepts::of_value(cx.schema.label);
    let mut label = accepts.builder(n);
    let mut times = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut received = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for (row, value) in rows.iter().enumerate() {
        let record = as_object(value, row)?;
        for key in record.keys() {
            if !matches!(key.as_str(), "prediction_id" | "label" | "timestamp") {
                return Err(unknown_field(row, key, "prediction_id, label, timestamp"));
            }
        }
        match prediction_id(record.get("prediction_id"), row)? {
            Some(id) => ids.append_value(id),
            None => return Err(missing(row, "prediction_id", "the id the prediction was stored under")),
        }
        match record.get("label") {
            None | Some(Value::Null) => return Err(missing(row, "label", &accepts.expected())),
            Some(v) => {
                label.append(accepts, v, row, || "label".into())?;
            }
        }
        times.append_value(match record.get("timestamp") {
            None | Some(Value::Null) => cx.now_us,
            Some(v) => timestamp_us(v, row, "timestamp")?,
        });
        // One microsecond apart, so the records of a request keep their order ("last one wins").
        received.append_value(cx.now_us + row as i64);
    }
    let columns: Vec<ArrayRef> =
        vec![Arc::new(ids.finish()), label.finish(), Arc::new(times.finish()), Arc::new(received.finish())];
    RecordBatch::try_new(cx.schema.labels_schema(), columns).map_err(|e| ApiError::internal(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::MAX_VALUE_BYTES;
    use crate::schema::ModelSchema;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float64Type;

    fn schema() -> ModelSchema {
        let f = |name: &str, kind, nullable| FeatureConfig { name: name.into(), kind, dim: None, nullable };
        ModelSchema {
            features: vec![
                f("age", FeatureKind::Numerical, true),
                f("city", FeatureKind::Categorical, true),
                f("vip", FeatureKind::Boolean, false),
            ],
            prediction: ValueKind::Categorical,
            label: ValueKind::Categorical,
            scores: vec!["no".into(), "yes".into()],
        }
    }

    fn run(body: &str) -> Result<RecordBatch, ApiError> {
        let s = schema();
        decode(&DecodeContext { schema: &s, now_us: 1_000_000 }, Table::Predictions, body.as_bytes())
    }

    #[test]
    fn object_array_and_ndjson_agree() {
        let one = r#"{"features": {"age": 31, "city": 7, "vip": 1}, "prediction": "yes", "scores": [0.2, 0.8]}"#;
        let array = format!("[{one},{one}]");
        let ndjson = format!("{one}\n{one}\n");
        assert_eq!(run(one).unwrap().num_rows(), 1);
        for body in [array, ndjson] {
            let b = run(&body).unwrap();
            assert_eq!(b.num_rows(), 2);
            assert_eq!(b.column_by_name("age").unwrap().as_primitive::<Float64Type>().value(1), 31.0);
            assert_eq!(b.column_by_name("city").unwrap().as_string::<i32>().value(0), "7");
            assert_eq!(b.column_by_name("score_yes").unwrap().as_primitive::<Float64Type>().value(0), 0.8);
            assert!(b.column_by_name("timestamp").unwrap().is_valid(0));
        }
    }

    #[test]
    fn event_times_are_accepted_from_1970_up_to_2200() {
        let at = |t: &str| run(&format!(r#"{{"timestamp": {t}, "features": {{"vip": true}}, "prediction": "no"}}"#));
        for good in ["\"1970-01-01T00:00:00Z\"", "\"2199-12-31T23:59:59.999999Z\"", "0", "1795132800.5"] {
            assert!(at(good).is_ok(), "{good}");
        }
        for bad in [
            "\"1969-12-31T23:59:59Z\"",
            "\"2200-01-01T00:00:00Z\"",
            "\"1600-01-01T00:00:00Z\"",
            "\"9999-12-31T23:59:59Z\"",
            "-1e12",
            "1e300",
        ] {
            let e = at(bad).unwrap_err();
            assert_eq!(
                (e.code, e.details.row, e.details.field.as_deref()),
                ("out_of_range", Some(0), Some("timestamp")),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_string_value_is_at_most_64_kib() {
        let with = |n: usize| {
            run(&format!(r#"{{"features": {{"city": "{}", "vip": true}}, "prediction": "no"}}"#, "c".repeat(n)))
        };
        assert!(with(MAX_VALUE_BYTES).is_ok());
        let e = with(MAX_VALUE_BYTES + 1).unwrap_err();
        assert_eq!((e.code, e.details.field.as_deref()), ("value_too_large", Some("features.city")));
        assert_eq!(e.details.got.as_deref(), Some("a string of 65537 bytes"));
    }

    #[test]
    fn errors_name_row_field_expected_and_got() {
        let good = r#"{"features": {"age": 1, "vip": true}, "prediction": "no"}"#;
        let e = run(&format!(r#"[{good}, {{"features": {{"age": "old", "vip": true}}, "prediction": "no"}}]"#))
            .unwrap_err();
        assert_eq!((e.code, e.details.row, e.details.field.as_deref()), ("wrong_type", Some(1), Some("features.age")));
        assert_eq!(e.details.got.as_deref(), Some("string \"old\""));
        let e = run(r#"{"features": {"age": 1}, "prediction": "no"}"#).unwrap_err();
        assert_eq!((e.code, e.details.field.as_deref()), ("missing_field", Some("features.vip")));
        let e = run(r#"{"features": {"vip": true, "height": 2}, "prediction": "no"}"#).unwrap_err();
        assert_eq!((e.code, e.details.field.as_deref()), ("unknown_field", Some("features.height")));
        // serde_json refuses numbers beyond f64's range, so no infinity ever reaches a column.
        let e = run(r#"{"features": {"age": 1e400, "vip": true}, "prediction": "no"}"#).unwrap_err();
        assert_eq!(e.code, "malformed_json");
        let e = run(&format!(r#"[{{"prediction_id": "a", "features": {{"vip": true}}, "prediction": "x"}}, {{"prediction_id": "a", "features": {{"vip": true}}, "prediction": "x"}}]"#)).unwrap_err();
        assert_eq!((e.code, e.details.row), ("duplicate_id", Some(1)));
        assert_eq!(run("{").unwrap_err().code, "malformed_json");
        assert_eq!(run("[]").unwrap().num_rows(), 0);
    }
}

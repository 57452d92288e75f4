//! Prediction requests, validated against the schema into one [`FeatureBatch`]: JSON records
//! (`/v1/models/{model}/predict`) and Open Inference Protocol v2 JSON (`/v2/models/{model}/infer`).
//! Errors name the row, the field, what was expected and what came, as the ingest API's do.

use anchorwatch_collector::ApiError;
use anchorwatch_collector::schema::{FeatureKind, ModelSchema};
use serde_json::Value;

/// One feature's values for every row of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numerical: `NaN` where missing.
    Num(Vec<f64>),
    /// Categorical or text: `None` where missing.
    Str(Vec<Option<String>>),
    /// Boolean: `None` where missing.
    Bool(Vec<Option<bool>>),
    /// Embedding of `dim` floats per row, flat; `NaN`s where missing.
    Emb(Vec<f32>, usize),
}

/// A validated request: one [`Column`] per schema feature, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureBatch {
    /// Rows.
    pub rows: usize,
    /// One per schema feature.
    pub columns: Vec<Column>,
    /// Client-given prediction ids, per row (`None`: one is generated).
    pub ids: Vec<Option<String>>,
}

/// A short description of a JSON value for error messages, without echoing large inputs.
pub fn describe(v: &Value) -> String {
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

fn expected(kind: FeatureKind, dim: Option<usize>) -> String {
    match kind {
        FeatureKind::Numerical => "a finite number".into(),
        FeatureKind::Categorical => "a string (or an integer or boolean, taken as text)".into(),
        FeatureKind::Text => "a string".into(),
        FeatureKind::Boolean => "true, false, 0 or 1".into(),
        FeatureKind::Embedding => format!("an array of {} numbers", dim.unwrap_or(0)),
    }
}

fn missing(row: usize, field: &str, expected: &str) -> ApiError {
    ApiError::bad_request("missing_field", format!("row {row}: required field `{field}` is missing"))
        .at(row, field)
        .expected_got(expected, "nothing")
}

fn too_many(rows: usize, max: usize) -> ApiError {
    ApiError::bad_request(
        "too_many_rows",
        format!("the request holds {rows} rows; predictor.max_batch_rows is {max}: split it"),
    )
    .expected_got(format!("at most {max} rows"), format!("{rows} rows"))
}

struct Builder<'a> {
    schema: &'a ModelSchema,
    columns: Vec<Column>,
}

impl<'a> Builder<'a> {
    fn new(schema: &'a ModelSchema, rows: usize) -> Self {
        let columns = schema
            .features
            .iter()
            .map(|f| match f.kind {
                FeatureKind::Numerical => Column::Num(Vec::with_capacity(rows)),
                FeatureKind::Categorical | FeatureKind::Text => Column::Str(Vec::with_capacity(rows)),
                FeatureKind::Boolean => Column::Bool(Vec::with_capacity(rows)),
                FeatureKind::Embedding => Column::Emb(Vec::with_capacity(rows), f.dim.unwrap_or(1)),
            })
            .collect();
        Self { schema, columns }
    }

    /// Appends feature `j`'s value for `row`; `None` or `null` is a missing value.
    fn push(&mut self, j: usize, v: Option<&Value>, row: usize, field: &str) -> Result<(), ApiError> {
        let f = &self.schema.features[j];
        let want = || expected(f.kind, f.dim);
        let wrong = |v: &Value| ApiError::wrong_type(row, field, &want(), describe(v));
        let v = match v {
            None | Some(Value::Null) if !f.nullable => return Err(missing(row, field, &want())),
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        };
        match (&mut self.columns[j], v) {
            (Column::Num(c), None) => c.push(f64::NAN),
            (Column::Num(c), Some(Value::Number(n))) => c.push(n.as_f64().ok_or_else(|| wrong(v.unwrap()))?),
            (Column::Str(c), None) => c.push(None),
            (Column::Str(c), Some(Value::String(s))) => c.push(Some(s.clone())),
            (Column::Str(c), Some(Value::Number(n)))
                if f.kind == FeatureKind::Categorical && (n.is_i64() || n.is_u64()) =>
            {
                c.push(Some(n.to_string()))
            }
            (Column::Str(c), Some(Value::Bool(b))) if f.kind == FeatureKind::Categorical => c.push(Some(b.to_string())),
            (Column::Bool(c), None) => c.push(None),
            (Column::Bool(c), Some(Value::Bool(b))) => c.push(Some(*b)),
            (Column::Bool(c), Some(Value::Number(n))) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                c.push(Some(n.as_u64() == Some(1)))
            }
            (Column::Emb(c, dim), None) => c.extend(std::iter::repeat_n(f32::NAN, *dim)),
            (Column::Emb(c, dim), Some(Value::Array(items))) => {
                if items.len() != *dim {
                    return Err(ApiError::wrong_type(
                        row,
                        field,
                        &want(),
                        format!("an array of {} items", items.len()),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    let x = item.as_f64().ok_or_else(|| {
                        ApiError::wrong_type(row, &format!("{field}[{i}]"), "a finite number", describe(item))
                    })?;
                    c.push(x as f32);
                }
            }
            (_, Some(v)) => return Err(wrong(v)),
        }
        Ok(())
    }
}

/// `/v1/models/{model}/predict`: a record `{"features": {...}, "prediction_id"?: "..."}` or an
/// array of them. Returns the batch and whether the body was a single record.
pub fn records(schema: &ModelSchema, body: &[u8], max_rows: usize) -> Result<(FeatureBatch, bool), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("expected a JSON record {{\"features\": {{...}}}} or an array of them: {e}"),
        )
    })?;
    let (items, single) = match value {
        Value::Array(items) => (items, false),
        one @ Value::Object(_) => (vec![one], true),
        other => {
            return Err(ApiError::bad_request("malformed_json", "expected a JSON record or an array of records")
                .expected_got("object or array", describe(&other)));
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("empty", "the request holds no records"));
    }
    if items.len() > max_rows {
        return Err(too_many(items.len(), max_rows));
    }
    let mut b = Builder::new(schema, items.len());
    let mut ids = Vec::with_capacity(items.len());
    for (row, item) in items.iter().enumerate() {
        let Value::Object(record) = item else {
            return Err(ApiError::wrong_type(row, "", "a JSON object", describe(item)));
        };
        for key in record.keys() {
            if !matches!(key.as_str(), "features" | "prediction_id") {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!(
                        "row {row}: unknown field `{key}`; a record holds `features` and, optionally, `prediction_id`"
                    ),
                )
                .at(row, key));
            }
        }
        ids.push(match record.get("prediction_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
            Some(other) => {
                return Err(ApiError::wrong_type(
                    row,
                    "prediction_id",
                    "a string of 1 to 128 characters",
                    describe(other),
                ));
            }
        });
        let features = match record.get("features") {
            Some(Value::Object(f)) => f,
            Some(other) => {
                return Err(ApiError::wrong_type(row, "features", "an object of feature values", describe(other)));
            }
            None => return Err(missing(row, "features", "an object of feature values")),
        };
        for key in features.keys() {
            if !schema.features.iter().any(|f| f.name == *key) {
                let known: Vec<&str> = schema.features.iter().map(|f| f.name.as_str()).collect();
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!("row {row}: unknown feature `{key}`; expected one of: {}", known.join(", ")),
                )
                .at(row, &format!("features.{key}")));
            }
        }
        for (j, f) in schema.features.iter().enumerate() {
            b.push(j, features.get(&f.name), row, &format!("features.{}", f.name))?;
        }
    }
    // The collector refuses a request that repeats an id: say so now, not after answering.
    let mut seen = std::collections::HashSet::new();
    for (row, id) in ids.iter().enumerate() {
        if let Some(id) = id.as_deref().filter(|id| !seen.insert(*id)) {
            return Err(ApiError::bad_request(
                "duplicate_id",
                format!("row {row}: prediction_id `{id}` appears twice in this request"),
            )
            .at(row, "prediction_id")
            .expected_got("an id unique within the request", id));
        }
    }
    Ok((FeatureBatch { rows: items.len(), columns: b.columns, ids }, single))
}

/// One Open Inference Protocol v2 request input.
#[derive(Debug, serde::Deserialize)]
struct OipInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Value>,
}

/// An Open Inference Protocol v2 request.
#[derive(Debug, serde::Deserialize)]
struct OipRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<OipInput>,
    #[serde(default)]
    #[allow(dead_code)]
    outputs: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Value>,
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other.clone()),
    }
}

/// `/v2/models/{model}/infer`: inputs by feature name (shape `[N]` or `[N, 1]`, `[N, D]` for an
/// embedding), or one `[N, F]` input named `matrix_input` (the model's own input name) holding
/// every feature. Returns the batch and the request's `id`.
pub fn oip(
    schema: &ModelSchema,
    matrix_input: Option<&str>,
    body: &[u8],
    max_rows: usize,
) -> Result<(FeatureBatch, Option<String>), ApiError> {
    let request: OipRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("expected an Open Inference Protocol v2 request {{\"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]}}: {e}"),
        )
    })?;
    if request.inputs.is_empty() {
        return Err(ApiError::bad_request("empty", "the request has no inputs"));
    }
    let mut rows: Option<usize> = None;
    let mut values: Vec<Option<Vec<Value>>> = vec![None; schema.features.len()];
    let f = schema.features.len();
    for (k, input) in request.inputs.iter().enumerate() {
        let field = format!("inputs[{k}]");
        if !matches!(input.datatype.as_str(), "FP32" | "FP64" | "INT32" | "INT64" | "BOOL" | "BYTES") {
            return Err(ApiError::bad_request(
                "wrong_type",
                format!("{field} (`{}`): unsupported datatype `{}`", input.name, input.datatype),
            )
            .field(&format!("{field}.datatype"))
            .expected_got("FP32, FP64, INT32, INT64, BOOL or BYTES", input.datatype.clone()));
        }
        let mut data = Vec::new();
        flatten(&input.data, &mut data);
        let position = schema.features.iter().position(|x| x.name == input.name);
        let n = match (position, input.shape.as_slice()) {
            (Some(j), [n]) if schema.features[j].dim.is_none() => *n,
            (Some(j), [n, w]) if *w == schema.features[j].dim.unwrap_or(1) as i64 => *n,
            (None, [n, w]) if matrix_input == Some(input.name.as_str()) && *w == f as i64 => *n,
            (Some(j), shape) => {
                let want = schema.features[j].dim.map_or("[N] or [N, 1]".to_string(), |d| format!("[N, {d}]"));
                return Err(ApiError::bad_request(
                    "wrong_shape",
                    format!("{field} (`{}`): expected shape {want}, got {shape:?}", input.name),
                )
                .field(&format!("{field}.shape"))
                .expected_got(want, format!("{shape:?}")));
            }
            (None, shape) => {
                let known: Vec<&str> = schema.features.iter().map(|x| x.name.as_str()).collect();
                let matrix = matrix_input.map_or(String::new(), |m| format!(", or `{m}` of shape [N, {f}]"));
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!("{field}: unknown input `{}` of shape {shape:?}; expected inputs named after the features ({}){matrix}", input.name, known.join(", ")),
                )
                .field(&format!("{field}.name")));
            }
        };
        let n = usize::try_from(n).map_err(|_| {
            ApiError::bad_request("wrong_shape", format!("{field}: negative shape")).field(&format!("{field}.shape"))
        })?;
        // Checked: a shape whose product overflows describes more values than any body holds.
        let width = input.shape.iter().skip(1).try_fold(1usize, |a, d| a.checked_mul(usize::try_from(*d).ok()?));
        let count = width.and_then(|w| n.checked_mul(w));
        if count != Some(data.len()) {
            let holds = count.map_or_else(|| "more than can be counted".to_string(), |v| v.to_string());
            return Err(ApiError::bad_request(
                "wrong_shape",
                format!(
                    "{field} (`{}`): shape {:?} holds {holds} values, data has {}",
                    input.name,
                    input.shape,
                    data.len()
                ),
            )
            .field(&format!("{field}.data"))
            .expected_got(format!("{holds} values"), format!("{} values", data.len())));
        }
        if rows.is_some_and(|r| r != n) {
            return Err(ApiError::bad_request(
                "wrong_shape",
                format!("{field} (`{}`): {n} rows, the inputs before have {}", input.name, rows.unwrap_or(0)),
            )
            .field(&format!("{field}.shape")));
        }
        rows = Some(n);
        match position {
            Some(j) if schema.features[j].kind == FeatureKind::Embedding => {
                let dim = schema.features[j].dim.unwrap_or(1);
                values[j] = Some(data.chunks(dim).map(|c| Value::Array(c.to_vec())).collect());
            }
            Some(j) => values[j] = Some(data),
            None => {
                for (j, slot) in values.iter_mut().enumerate() {
                    *slot = Some(data.iter().skip(j).step_by(f).cloned().collect());
                }
            }
        }
    }
    let rows = rows.unwrap_or(0);
    if rows == 0 {
        return Err(ApiError::bad_request("empty", "the request holds no rows"));
    }
    if rows > max_rows {
        return Err(too_many(rows, max_rows));
    }
    let mut b = Builder::new(schema, rows);
    for row in 0..rows {
        for (j, feature) in schema.features.iter().enumerate() {
            b.push(j, values[j].as_ref().map(|v| &v[row]), row, &feature.name)?;
        }
    }
    Ok((FeatureBatch { rows, columns: b.columns, ids: vec![None; rows] }, request.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchorwatch_collector::schema::{FeatureConfig, ValueKind};

    fn schema() -> ModelSchema {
        let f = |name: &str, kind, nullable| FeatureConfig { name: name.into(), kind, dim: None, nullable };
        ModelSchema {
            features: vec![
                f("age", FeatureKind::Numerical, true),
                f("region", FeatureKind::Categorical, true),
                f("vip", FeatureKind::Boolean, false),
            ],
            prediction: ValueKind::Categorical,
            label: ValueKind::Categorical,
            scores: vec![],
        }
    }

    #[test]
    fn records_and_oip_give_the_same_batch() {
        let s = schema();
        let (a, single) = records(
            &s,
            br#"[{"features": {"age": 31, "region": "north", "vip": true}}, {"features": {"vip": 0}}]"#,
            10,
        )
        .unwrap();
        assert!(!single);
        let (b, id) = oip(
            &s,
            None,
            br#"{"id": "r1", "inputs": [
                {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [[31], null]},
                {"name": "region", "shape": [2], "datatype": "BYTES", "data": ["north", null]},
                {"name": "vip", "shape": [2], "datatype": "BOOL", "data": [true, false]}]}"#,
            10,
        )
        .unwrap();
        assert_eq!(id.as_deref(), Some("r1"));
        assert_eq!(a.columns[1], b.columns[1]);
        assert_eq!(a.columns[2], b.columns[2]);
        // Row 1 has only `vip`: age and region are missing.
        assert!(matches!(&a.columns[0], Column::Num(v) if v[1].is_nan()), "{:?}", a.columns[0]);
        assert_eq!(a.columns[1], Column::Str(vec![Some("north".into()), None]));
        assert_eq!(a.columns[2], Column::Bool(vec![Some(true), Some(false)]));
    }

    #[test]
    fn a_repeated_prediction_id_is_refused_with_its_row() {
        let s = schema();
        let body =
            br#"[{"prediction_id": "a", "features": {"vip": true}}, {"prediction_id": "b", "features": {"vip": true}},
                        {"prediction_id": "a", "features": {"vip": false}}]"#;
        let e = records(&s, body, 10).unwrap_err();
        assert_eq!(
            (e.code, e.details.row, e.details.field.as_deref()),
            ("duplicate_id", Some(2), Some("prediction_id"))
        );
        assert!(e.message.contains("`a` appears twice"), "{}", e.message);
    }

    #[test]
    fn errors_name_row_and_field() {
        let s = schema();
        let e = records(&s, br#"[{"features": {"vip": true}}, {"features": {"age": "old", "vip": true}}]"#, 10)
            .unwrap_err();
        assert_eq!((e.code, e.details.row, e.details.field.as_deref()), ("wrong_type", Some(1), Some("features.age")));
        let e = records(&s, br#"{"features": {"age": 3}}"#, 10).unwrap_err();
        assert_eq!((e.code, e.details.field.as_deref()), ("missing_field", Some("features.vip")));
        let e = records(&s, br#"{"features": {"vip": 1, "height": 3}}"#, 10).unwrap_err();
        assert_eq!((e.code, e.details.field.as_deref()), ("unknown_field", Some("features.height")));
        let e = records(&s, br#"[{"features": {"vip": 1}}, {"features": {"vip": 1}}]"#, 1).unwrap_err();
        assert_eq!(e.code, "too_many_rows");
        let e =
            oip(&s, None, br#"{"inputs": [{"name": "vip", "shape": [2], "datatype": "BOOL", "data": [true]}]}"#, 10)
                .unwrap_err();
        assert_eq!(e.code, "wrong_shape");
    }
}

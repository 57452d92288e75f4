//! Reading rows (features, prediction, scores) from a predict request and its response.
//!
//! Shapes are detected from the request body, unless a JSON-pointer [`Mapping`] is configured:
//! the Open Inference Protocol v2 (`inputs`/`outputs` tensors), TF-Serving (`instances` or
//! columnar `inputs` → `predictions`), and plain JSON (`{"features": {...}}` or arrays of
//! records → `{"prediction": ...}`, `{"predictions": [...]}` or an array). `docs/proxy.md`
//! states the rules precisely. Pure functions: no IO, no clock.

use serde_json::{Map, Value};

use super::config::{ExtractConfig, Mapping};

/// One captured row, before ids and times are added.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Feature name to value.
    pub features: Map<String, Value>,
    /// The prediction.
    pub prediction: Value,
    /// Scores, when the response has them: an object by class or an array in declared order.
    pub scores: Option<Value>,
}

/// The rows of one exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// In request order.
    pub rows: Vec<Row>,
    /// The model version the response names (OIP `model_version`), if any.
    pub model_version: Option<String>,
}

/// Why an exchange yielded no rows; shown in debug logs only.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractError(pub String);

impl std::fmt::Display for ExtractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T, E = ExtractError> = std::result::Result<T, E>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(ExtractError(message.into()))
}

/// Reads rows from request and response bodies as `config` says.
pub fn extract(config: &ExtractConfig, request: &[u8], response: &[u8]) -> Result<Extracted> {
    let req: Value = serde_json::from_slice(request).or_else(|e| fail(format!("request is not JSON: {e}")))?;
    let resp: Value = serde_json::from_slice(response).or_else(|e| fail(format!("response is not JSON: {e}")))?;
    let (features, predictions, version) = match &config.mapping {
        Some(m) => mapped(m, &req, &resp)?,
        None => detected(config, &req, &resp)?,
    };
    if features.len() != predictions.len() {
        return fail(format!("{} request rows but {} predictions", features.len(), predictions.len()));
    }
    if features.is_empty() {
        return fail("no rows");
    }
    let rows = features
        .into_iter()
        .zip(predictions)
        .map(|(features, (prediction, scores))| Row { features, prediction, scores })
        .collect();
    Ok(Extracted { rows, model_version: version.or_else(|| config.model_version.clone()) })
}

type Features = Vec<Map<String, Value>>;
type Predictions = Vec<(Value, Option<Value>)>;

fn detected(config: &ExtractConfig, req: &Value, resp: &Value) -> Result<(Features, Predictions, Option<String>)> {
    if let Some(inputs) = req.get("inputs").and_then(Value::as_array) {
        return oip(config, inputs, resp);
    }
    let features = if let Some(instances) = req.get("instances") {
        let Some(instances) = instances.as_array() else { return fail("`instances` is not an array") };
        instances.iter().map(|i| positional(config, i)).collect::<Result<_>>()?
    } else if let Some(columns) = req.get("inputs").and_then(Value::as_object) {
        columnar(columns)?
    } else if let Some(f) = req.get("features") {
        match f {
            Value::Object(map) => vec![map.clone()],
            Value::Array(items) => items.iter().map(|i| record_features(config, i)).collect::<Result<_>>()?,
            _ => return fail("`features` is neither an object nor an array"),
        }
    } else if let Value::Array(items) = req {
        items.iter().map(|i| record_features(config, i)).collect::<Result<_>>()?
    } else {
        return fail("unknown request shape: no `inputs`, `instances` or `features`, and not an array");
    };
    let predictions = match resp {
        Value::Object(map) if map.contains_key("predictions") => match &map["predictions"] {
            Value::Array(items) => items.iter().map(prediction_of).collect::<Result<_>>()?,
            other => vec![prediction_of(other)?],
        },
        Value::Object(map) if map.contains_key("outputs") => match &map["outputs"] {
            Value::Array(items) => items.iter().map(prediction_of).collect::<Result<_>>()?,
            other => vec![prediction_of(other)?],
        },
        Value::Object(map) if map.contains_key("prediction") => vec![prediction_of(resp)?],
        Value::Array(items) => items.iter().map(prediction_of).collect::<Result<_>>()?,
        _ => return fail("unknown response shape: no `prediction`, `predictions` or `outputs`, and not an array"),
    };
    Ok((features, predictions, None))
}

/// A record of an array: `{"features": {...}}`, or the object itself as the features map, or a
/// list of positional values.
fn record_features(config: &ExtractConfig, item: &Value) -> Result<Map<String, Value>> {
    match item {
        Value::Object(map) => match map.get("features") {
            Some(Value::Object(f)) => Ok(f.clone()),
            Some(_) => fail("a record's `features` is not an object"),
            None => Ok(map.clone()),
        },
        other => positional(config, other),
    }
}

/// A TF-Serving instance: an object of named inputs, a list of positional values, or one value.
fn positional(config: &ExtractConfig, item: &Value) -> Result<Map<String, Value>> {
    match item {
        Value::Object(map) => Ok(map.clone()),
        Value::Array(values) => named(config, values),
        scalar => named(config, std::slice::from_ref(scalar)),
    }
}

fn named(config: &ExtractConfig, values: &[Value]) -> Result<Map<String, Value>> {
    if !config.feature_names.is_empty() && config.feature_names.len() != values.len() {
        return fail(format!("{} positional values but {} --feature-names", values.len(), config.feature_names.len()));
    }
    Ok(values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = config.feature_names.get(i).cloned().unwrap_or_else(|| format!("f{i}"));
            (name, v.clone())
        })
        .collect())
}

/// TF-Serving's columnar form: `{"inputs": {"a": [1, 2], "b": [3, 4]}}`, one row per element.
fn columnar(columns: &Map<String, Value>) -> Result<Features> {
    let mut rows: Option<Features> = None;
    for (name, column) in columns {
        let Some(values) = column.as_array() else { return fail(format!("input `{name}` is not an array")) };
        let rows = rows.get_or_insert_with(|| vec![Map::new(); values.len()]);
        if rows.len() != values.len() {
            return fail(format!("input `{name}` has {} rows, others {}", values.len(), rows.len()));
        }
        for (row, v) in rows.iter_mut().zip(values) {
            row.insert(name.clone(), v.clone());
        }
    }
    rows.map_or_else(|| fail("`inputs` is empty"), Ok)
}

/// One response element: `{"prediction", "scores"}`, a list (one value: the prediction; more:
/// the scores, with the index of the largest as the prediction), or a value.
fn prediction_of(item: &Value) -> Result<(Value, Option<Value>)> {
    match item {
        Value::Object(map) => {
            let Some(p) = map.get("prediction") else { return fail("a response record has no `prediction`") };
            Ok((p.clone(), map.get("scores").or_else(|| map.get("probabilities")).cloned()))
        }
        Value::Array(values) if values.len() == 1 => Ok((values[0].clone(), None)),
        Value::Array(values) => Ok((argmax(values)?, Some(item.clone()))),
        scalar => Ok((scalar.clone(), None)),
    }
}

fn argmax(values: &[Value]) -> Result<Value> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.iter().enumerate() {
        let Some(x) = v.as_f64() else { return fail("a list of scores holds a non-number") };
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| Value::from(i)).map_or_else(|| fail("an empty list of scores"), Ok)
}

/// A tensor of the Open Inference Protocol, one value (or vector) per batch element.
struct Tensor {
    name: String,
    rows: Vec<Value>,
    width: usize,
}

fn tensor(t: &Value) -> Result<Tensor> {
    let Some(name) = t.get("name").and_then(Value::as_str) else { return fail("a tensor has no `name`") };
    let Some(data) = t.get("data") else { return fail(format!("tensor `{name}` has no `data`")) };
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    let shape: Vec<usize> = match t.get("shape").and_then(Value::as_array) {
        Some(dims) => dims.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<_>>().ok_or_else(|| {
            ExtractError(format!("tensor `{name}`: `shape` holds a value that is not a non-negative integer"))
        })?,
        None => vec![flat.len()],
    };
    let (batch, width) = match shape.split_first() {
        // A shape whose product overflows holds no data that could be sent: `None` refuses it.
        Some((n, rest)) => (*n, rest.iter().try_fold(1usize, |a, d| a.checked_mul(*d))),
        None => (1, Some(1)),
    };
    let width = match width.and_then(|w| Some((w, batch.checked_mul(w)?))) {
        Some((w, total)) if total == flat.len() => w,
        _ => return fail(format!("tensor `{name}`: shape {shape:?} does not hold {} values", flat.len())),
    };
    let rows = if width == 1 { flat } else { flat.chunks(width.max(1)).map(|c| Value::Array(c.to_vec())).collect() };
    Ok(Tensor { name: name.to_string(), rows, width })
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other.clone()),
    }
}

/// Open Inference Protocol v2: each input is a feature (a vector of `--feature-names` length is
/// split into those features); the prediction output (configured, or the first) and the scores
/// output give one value per batch element.
fn oip(config: &ExtractConfig, inputs: &[Value], resp: &Value) -> Result<(Features, Predictions, Option<String>)> {
    let tensors: Vec<Tensor> = inputs.iter().map(tensor).collect::<Result<_>>()?;
    let Some(batch) = tensors.first().map(|t| t.rows.len()) else { return fail("`inputs` is empty") };
    let mut features = vec![Map::new(); batch];
    for t in &tensors {
        if t.rows.len() != batch {
            return fail(format!("input `{}` has {} rows, the first input {batch}", t.name, t.rows.len()));
        }
        let split = t.width > 1 && config.feature_names.len() == t.width;
        for (row, v) in features.iter_mut().zip(&t.rows) {
            match v {
                Value::Array(values) if split => {
                    for (name, x) in config.feature_names.iter().zip(values) {
                        row.insert(name.clone(), x.clone());
                    }
                }
                _ => {
                    row.insert(t.name.clone(), v.clone());
                }
            }
        }
    }
    let Some(outputs) = resp.get("outputs").and_then(Value::as_array) else {
        return fail("an Open Inference Protocol request but the response has no `outputs` array");
    };
    let outputs: Vec<Tensor> = outputs.iter().map(tensor).collect::<Result<_>>()?;
    let pick = |name: &str| outputs.iter().find(|t| t.name == name);
    let prediction = match &config.prediction_output {
        Some(name) => pick(name).ok_or_else(|| ExtractError(format!("no output named `{name}`")))?,
        None => outputs.first().ok_or_else(|| ExtractError("`outputs` is empty".into()))?,
    };
    let scores = match &config.scores_output {
        Some(name) => Some(pick(name).ok_or_else(|| ExtractError(format!("no output named `{name}`")))?),
        None => None,
    };
    let mut predictions = Vec::with_capacity(batch);
    for i in 0..prediction.rows.len() {
        let s = match scores {
            Some(s) => {
                Some(s.rows.get(i).cloned().ok_or_else(|| ExtractError("fewer scores than predictions".into()))?)
            }
            None => None,
        };
        predictions.push((prediction.rows[i].clone(), s));
    }
    let version = resp.get("model_version").and_then(Value::as_str).map(str::to_string);
    Ok((features, predictions, version))
}

fn at<'v>(v: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() { Some(v) } else { v.pointer(pointer) }
}

fn rows_at<'v>(v: &'v Value, pointer: &str, which: &str) -> Result<Vec<&'v Value>> {
    match at(v, pointer) {
        Some(Value::Array(items)) => Ok(items.iter().collect()),
        Some(one) => Ok(vec![one]),
        None => fail(format!("{which}: nothing at JSON pointer `{pointer}`")),
    }
}

fn mapped(m: &Mapping, req: &Value, resp: &Value) -> Result<(Features, Predictions, Option<String>)> {
    let features = rows_at(req, &m.request_rows, "request")?
        .into_iter()
        .map(|row| {
            if m.features.is_empty() {
                match row {
                    Value::Object(map) => Ok(map.clone()),
                    _ => fail("a request row is not an object and no --feature mapping is given"),
                }
            } else {
                Ok(m.features
                    .iter()
                    .map(|(name, p)| (name.clone(), at(row, p).cloned().unwrap_or(Value::Null)))
                    .collect())
            }
        })
        .collect::<Result<_>>()?;
    let predictions = rows_at(resp, &m.response_rows, "response")?
        .into_iter()
        .map(|row| {
            let Some(p) = at(row, &m.prediction) else {
                return fail(format!("response: no prediction at JSON pointer `{}`", m.prediction));
            };
            Ok((p.clone(), m.scores.as_deref().and_then(|s| at(row, s)).cloned()))
        })
        .collect::<Result<_>>()?;
    Ok((features, predictions, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(config: &ExtractConfig, req: Value, resp: Value) -> Result<Extracted> {
        extract(config, &serde_json::to_vec(&req).unwrap(), &serde_json::to_vec(&resp).unwrap())
    }

    fn row(features: Value, prediction: Value, scores: Option<Value>) -> Row {
        Row { features: features.as_object().unwrap().clone(), prediction, scores }
    }

    #[test]
    fn open_inference_protocol_batches() {
        let config = ExtractConfig { scores_output: Some("probs".into()), ..Default::default() };
        let req = json!({"id": "r1", "inputs": [
            {"name": "age", "shape": [2], "datatype": "FP64", "data": [41.0, 30.5]},
            {"name": "region", "shape": [2, 1], "datatype": "BYTES", "data": [["north"], ["south"]]},
        ]});
        let resp = json!({"model_name": "credit", "model_version": "7", "outputs": [
            {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["good", "bad"]},
            {"name": "probs", "shape": [2, 2], "datatype": "FP32", "data": [0.9, 0.1, 0.2, 0.8]},
        ]});
        let out = run(&config, req, resp).unwrap();
        assert_eq!(out.model_version.as_deref(), Some("7"));
        assert_eq!(
            out.rows,
            vec![
                row(json!({"age": 41.0, "region": "north"}), json!("good"), Some(json!([0.9, 0.1]))),
                row(json!({"age": 30.5, "region": "south"}), json!("bad"), Some(json!([0.2, 0.8]))),
            ]
        );
    }

    #[test]
    fn open_inference_protocol_matrix_with_feature_names() {
        let config = ExtractConfig { feature_names: vec!["a".into(), "b".into()], ..Default::default() };
        let req = json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]});
        let resp = json!({"outputs": [{"name": "y", "shape": [2, 1], "datatype": "FP32", "data": [5, 6]}]});
        let out = run(&config, req, resp).unwrap();
        assert_eq!(out.rows[1], row(json!({"a": 3, "b": 4}), json!(6), None));
        let bad = json!({"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]});
        assert!(run(&config, bad, json!({"outputs": []})).is_err());
    }

    #[test]
    fn plain_tf_serving_and_arrays() {
        let c = ExtractConfig::default();
        let out =
            run(&c, json!({"features": {"age": 1}}), json!({"prediction": "good", "scores": [0.7, 0.3]})).unwrap();
        assert_eq!(out.rows, vec![row(json!({"age": 1}), json!("good"), Some(json!([0.7, 0.3])))]);
        let out = run(&c, json!([{"features": {"age": 1}}, {"age": 2}]), json!([{"prediction": 1}, 0])).unwrap();
        assert_eq!(out.rows[1], row(json!({"age": 2}), json!(0), None));
        let out =
            run(&c, json!({"instances": [[1, 2], {"f0": 3}]}), json!({"predictions": [[0.2, 0.8], [5]]})).unwrap();
        assert_eq!(out.rows[0], row(json!({"f0": 1, "f1": 2}), json!(1), Some(json!([0.2, 0.8]))));
        assert_eq!(out.rows[1], row(json!({"f0": 3}), json!(5), None));
        let out = run(&c, json!({"inputs": {"a": [1, 2]}}), json!({"predictions": [7, 8]})).unwrap();
        assert_eq!(out.rows[1], row(json!({"a": 2}), json!(8), None));
        assert!(run(&c, json!({"features": {"age": 1}}), json!({"predictions": [1, 2]})).is_err());
        assert!(run(&c, json!({"x": 1}), json!({"prediction": 1})).is_err());
    }

    #[test]
    fn json_pointer_mapping() {
        let mapping = Mapping {
            request_rows: "/data".into(),
            features: vec![("age".into(), "/person/age".into()), ("vip".into(), "/vip".into())],
            response_rows: "/result".into(),
            prediction: "/label".into(),
            scores: Some("/p".into()),
        };
        let c = ExtractConfig { mapping: Some(mapping), ..Default::default() };
        let req = json!({"data": [{"person": {"age": 40}, "vip": true}, {"person": {"age": 2}}]});
        let resp = json!({"result": [{"label": "a", "p": {"a": 1.0}}, {"label": "b"}]});
        let out = run(&c, req, resp).unwrap();
        assert_eq!(out.rows[0], row(json!({"age": 40, "vip": true}), json!("a"), Some(json!({"a": 1.0}))));
        assert_eq!(out.rows[1], row(json!({"age": 2, "vip": null}), json!("b"), None));
    }
}

//! The signature contract of `docs/models.md`: how an ONNX model's inputs and outputs map to a
//! model's schema. [`check`] reads a session's inputs and outputs and either says how to feed and
//! read the model ([`Signature`]) or explains, in one message, what was expected and what was found.

use anchorwatch_collector::schema::{FeatureKind, ModelSchema, ValueKind};
use ort::session::Session;
use ort::value::{Outlet, TensorElementType, ValueType};
use serde::{Deserialize, Serialize};

/// Element types anchorwatch feeds and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// float32.
    F32,
    /// float64.
    F64,
    /// int64.
    I64,
    /// string.
    Str,
    /// bool.
    Bool,
}

/// How the features go in.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// One input per schema feature, named as the feature: element types in schema order.
    PerFeature(Vec<Elem>),
    /// One `[N, F]` input holding every feature, columns in schema order.
    Matrix {
        /// The input's name.
        name: String,
        /// float32 or float64.
        elem: Elem,
    },
}

/// How the prediction comes out.
#[derive(Debug, Clone, PartialEq)]
pub enum Outputs {
    /// `label` (int64 or string) and, when the schema has scores, `probabilities` [N, C].
    Classifier {
        /// The label's element type.
        label: Elem,
        /// Whether `probabilities` is read.
        probabilities: bool,
    },
    /// `variable` [N, 1] or [N].
    Regressor {
        /// float32 or float64.
        elem: Elem,
    },
}

/// A checked signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// The inputs.
    pub layout: Layout,
    /// The outputs read.
    pub outputs: Outputs,
}

/// One input or output as ONNX Runtime reads it, for the version's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoDesc {
    /// Name in the graph.
    pub name: String,
    /// Element type (`float`, `string`, ...) or the non-tensor kind.
    #[serde(rename = "type")]
    pub ty: String,
    /// Dimensions; -1 is dynamic.
    pub shape: Vec<i64>,
}

/// Describes the graph's inputs and outputs.
pub fn describe(session: &Session) -> (Vec<IoDesc>, Vec<IoDesc>) {
    let d = |o: &Outlet| IoDesc { name: o.name().to_string(), ty: type_name(o.dtype()), shape: dims(o.dtype()) };
    (session.inputs().iter().map(d).collect(), session.outputs().iter().map(d).collect())
}

fn dims(t: &ValueType) -> Vec<i64> {
    t.tensor_shape().map(|s| s.iter().copied().collect()).unwrap_or_default()
}

fn type_name(t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, .. } => elem_name(*ty).to_string(),
        ValueType::Sequence(_) => "sequence".into(),
        ValueType::Map { .. } => "map (a ZipMap? convert with zipmap=False)".into(),
        ValueType::Optional(_) => "optional".into(),
    }
}

fn elem_name(t: TensorElementType) -> &'static str {
    match t {
        TensorElementType::Float32 => "float",
        TensorElementType::Float64 => "double",
        TensorElementType::Int64 => "int64",
        TensorElementType::Int32 => "int32",
        TensorElementType::String => "string",
        TensorElementType::Bool => "bool",
        TensorElementType::Float16 => "float16",
        _ => "another element type",
    }
}

fn elem_of(t: &ValueType) -> Option<Elem> {
    match t.tensor_type()? {
        TensorElementType::Float32 => Some(Elem::F32),
        TensorElementType::Float64 => Some(Elem::F64),
        TensorElementType::Int64 => Some(Elem::I64),
        TensorElementType::String => Some(Elem::Str),
        TensorElementType::Bool => Some(Elem::Bool),
        _ => None,
    }
}

fn show(o: &Outlet) -> String {
    let shape: Vec<String> =
        dims(o.dtype()).iter().map(|d| if *d < 0 { "N".to_string() } else { d.to_string() }).collect();
    format!("`{}` {} [{}]", o.name(), type_name(o.dtype()), shape.join(", "))
}

/// Whether a dimension is `want` or dynamic.
fn dim_ok(d: i64, want: i64) -> bool {
    d < 0 || d == want
}

/// Checks a model's inputs and outputs against a schema (`docs/models.md`, "Signature contract").
pub fn check(session: &Session, schema: &ModelSchema) -> Result<Signature, String> {
    let layout = check_inputs(session.inputs(), schema)?;
    let outputs = check_outputs(session.outputs(), schema)?;
    Ok(Signature { layout, outputs })
}

fn check_inputs(inputs: &[Outlet], schema: &ModelSchema) -> Result<Layout, String> {
    let found = || inputs.iter().map(show).collect::<Vec<_>>().join(", ");
    let names: Vec<&str> = schema.features.iter().map(|f| f.name.as_str()).collect();
    let f = names.len() as i64;
    let all_numeric = schema.features.iter().all(|f| matches!(f.kind, FeatureKind::Numerical | FeatureKind::Boolean));
    if inputs.len() == 1 && !names.contains(&inputs[0].name()) {
        let input = &inputs[0];
        let shape = dims(input.dtype());
        let elem = elem_of(input.dtype());
        if !all_numeric {
            return Err(format!(
                "expected one input per feature ({}), since not every feature is numerical or boolean; found one input {}",
                expected_inputs(schema),
                show(input)
            ));
        }
        if !matches!(elem, Some(Elem::F32 | Elem::F64))
            || shape.len() != 2
            || !dim_ok(shape[0], 1)
            || !dim_ok(shape[1], f)
        {
            return Err(format!(
                "expected one float input of shape [N, {f}] (the features {} in that order) or one input per feature ({}); found {}",
                names.join(", "),
                expected_inputs(schema),
                show(input)
            ));
        }
        return Ok(Layout::Matrix { name: input.name().to_string(), elem: elem.unwrap_or(Elem::F32) });
    }
    let mut elems = Vec::new();
    for feature in &schema.features {
        let Some(input) = inputs.iter().find(|i| i.name() == feature.name) else {
            return Err(format!(
                "expected an input named `{}` ({}); the model's inputs are: {}",
                feature.name,
                expected_input(feature.kind, feature.dim),
                found()
            ));
        };
        let shape = dims(input.dtype());
        let elem = elem_of(input.dtype());
        let width = feature.dim.unwrap_or(1) as i64;
        let type_ok = match feature.kind {
            FeatureKind::Numerical => matches!(elem, Some(Elem::F32 | Elem::F64 | Elem::I64)),
            FeatureKind::Categorical | FeatureKind::Text => elem == Some(Elem::Str),
            FeatureKind::Boolean => matches!(elem, Some(Elem::Bool | Elem::F32 | Elem::F64)),
            FeatureKind::Embedding => elem == Some(Elem::F32),
        };
        let shape_ok = shape.len() == 2 && dim_ok(shape[0], 1) && dim_ok(shape[1], width);
        if !type_ok || !shape_ok {
            return Err(format!(
                "input `{}`: expected {}, found {}",
                feature.name,
                expected_input(feature.kind, feature.dim),
                show(input)
            ));
        }
        elems.push(elem.unwrap_or(Elem::F32));
    }
    if let Some(extra) = inputs.iter().find(|i| !names.contains(&i.name())) {
        return Err(format!(
            "input {} is not a feature of the schema; expected exactly the inputs {}",
            show(extra),
            expected_inputs(schema)
        ));
    }
    Ok(Layout::PerFeature(elems))
}

fn expected_input(kind: FeatureKind, dim: Option<usize>) -> String {
    match kind {
        FeatureKind::Numerical => "float [N, 1]".into(),
        FeatureKind::Categorical | FeatureKind::Text => "string [N, 1]".into(),
        FeatureKind::Boolean => "bool or float [N, 1]".into(),
        FeatureKind::Embedding => format!("float [N, {}]", dim.unwrap_or(1)),
    }
}

fn expected_inputs(schema: &ModelSchema) -> String {
    schema
        .features
        .iter()
        .map(|f| format!("`{}` {}", f.name, expected_input(f.kind, f.dim)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_outputs(outputs: &[Outlet], schema: &ModelSchema) -> Result<Outputs, String> {
    let found = || outputs.iter().map(show).collect::<Vec<_>>().join(", ");
    let find = |name: &str| outputs.iter().find(|o| o.name() == name);
    let rows_ok = |shape: &[i64]| match shape {
        [n] => dim_ok(*n, 1),
        [n, one] => dim_ok(*n, 1) && dim_ok(*one, 1),
        _ => false,
    };
    match schema.prediction {
        ValueKind::Categorical | ValueKind::Boolean => {
            let Some(label) = find("label") else {
                return Err(format!(
                    "expected an output `label` (int64 or string [N]) for a classifier; the model's outputs are: {}",
                    found()
                ));
            };
            let elem = elem_of(label.dtype());
            if !matches!(elem, Some(Elem::I64 | Elem::Str)) || !rows_ok(&dims(label.dtype())) {
                return Err(format!("output `label`: expected int64 or string [N], found {}", show(label)));
            }
            let classes = schema.scores.len() as i64;
            let probabilities = match find("probabilities") {
                None if classes > 0 => {
                    return Err(format!(
                        "expected an output `probabilities` (float [N, {classes}], one column per score: {}) since the schema declares scores; the model's outputs are: {} (a ZipMap output? convert with zipmap=False)",
                        schema.scores.join(", "),
                        found()
                    ));
                }
                None => false,
                Some(p) => {
                    let shape = dims(p.dtype());
                    let ok = elem_of(p.dtype()) == Some(Elem::F32)
                        && shape.len() == 2
                        && dim_ok(shape[0], 1)
                        && (classes == 0 || dim_ok(shape[1], classes));
                    if !ok {
                        return Err(format!(
                            "output `probabilities`: expected float [N, {}], found {}",
                            if classes > 0 { classes.to_string() } else { "C".into() },
                            show(p)
                        ));
                    }
                    classes > 0
                }
            };
            Ok(Outputs::Classifier { label: elem.unwrap_or(Elem::Str), probabilities })
        }
        ValueKind::Numerical => {
            let Some(variable) = find("variable") else {
                return Err(format!(
                    "expected an output `variable` (float [N, 1]) for a regressor; the model's outputs are: {}",
                    found()
                ));
            };
            let elem = elem_of(variable.dtype());
            if !matches!(elem, Some(Elem::F32 | Elem::F64)) || !rows_ok(&dims(variable.dtype())) {
                return Err(format!("output `variable`: expected float [N, 1], found {}", show(variable)));
            }
            Ok(Outputs::Regressor { elem: elem.unwrap_or(Elem::F32) })
        }
    }
}

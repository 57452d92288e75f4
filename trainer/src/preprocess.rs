//! Preprocessing fitted on the training data, applied in memory and written into the ONNX graph, so
//! that a served model takes raw feature values.
//!
//! Columns of the design matrix: first the numerical and boolean features in the order given, then
//! one block of one-hot columns per categorical feature in the order given. Inputs are rounded to
//! float32 first, as ONNX Runtime receives them.

use crate::data::{Column, Data, FeatureKind};
use crate::onnx::{AttrValue, Dim, ElemType, GraphBuilder, ML_DOMAIN, ValueInfo};
use crate::{Error, InputLayout, Result};

/// At most this many categories per categorical feature get a column (the most frequent ones; ties
/// by name): an id-like column must not blow up the model.
pub const MAX_CATEGORIES: usize = 100;

/// How one feature is encoded, learned from the training data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureInfo {
    /// Feature name (and ONNX input name).
    pub name: String,
    /// Kind of feature.
    pub kind: FeatureKind,
    /// Value a missing number or boolean becomes: the training mean (share of `true` for booleans).
    /// Unused for categorical features.
    pub fill: f64,
    /// Standard deviation (population) the standardized value is divided by; 1 when the feature is
    /// not standardized, constant in training, or not numerical.
    pub scale: f64,
    /// Categories that get a one-hot column, sorted; empty unless categorical.
    pub categories: Vec<String>,
}

/// A dense row-major matrix.
#[derive(Debug, Clone)]
pub(crate) struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// The fitted preprocessing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Preprocessor {
    pub features: Vec<FeatureInfo>,
    /// Subtract the mean and divide by the standard deviation (linear models); trees take raw values.
    pub standardize: bool,
}

fn f32_exact(x: f64) -> f64 {
    x as f32 as f64
}

impl Preprocessor {
    /// Learns means, deviations and categories from the training data.
    pub(crate) fn fit(data: &Data, standardize: bool) -> Result<Self> {
        let mut features = Vec::with_capacity(data.features().len());
        for f in data.features() {
            let info = match &f.column {
                Column::Numerical(values) => {
                    if let Some(i) = values.iter().position(|v| v.is_infinite() || f32_exact(*v).is_infinite()) {
                        return Err(Error::InvalidData(format!(
                            "feature '{}', row {i}: {} does not fit a float32",
                            f.name, values[i]
                        )));
                    }
                    let present: Vec<f64> = values.iter().filter(|v| !v.is_nan()).map(|v| f32_exact(*v)).collect();
                    let (mean, std) = mean_std(&present);
                    let scale = if standardize && std > 0.0 && (std as f32) > 0.0 { std } else { 1.0 };
                    FeatureInfo {
                        name: f.name.clone(),
                        kind: FeatureKind::Numerical,
                        fill: mean,
                        scale,
                        categories: vec![],
                    }
                }
                Column::Boolean(values) => {
                    let present: Vec<f64> = values.iter().flatten().map(|b| if *b { 1.0 } else { 0.0 }).collect();
                    let (mean, _) = mean_std(&present);
                    FeatureInfo {
                        name: f.name.clone(),
                        kind: FeatureKind::Boolean,
                        fill: mean,
                        scale: 1.0,
                        categories: vec![],
                    }
                }
                Column::Categorical(values) => {
                    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
                    for v in values.iter().flatten().filter(|v| !v.is_empty()) {
                        *counts.entry(v.as_str()).or_default() += 1;
                    }
                    let mut by_count: Vec<(&str, usize)> = counts.into_iter().collect();
                    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                    by_count.truncate(MAX_CATEGORIES);
                    let mut categories: Vec<String> = by_count.into_iter().map(|(c, _)| c.to_string()).collect();
                    categories.sort();
                    FeatureInfo {
                        name: f.name.clone(),
                        kind: FeatureKind::Categorical,
                        fill: 0.0,
                        scale: 1.0,
                        categories,
                    }
                }
            };
            features.push(info);
        }
        Ok(Preprocessor { features, standardize })
    }

    fn numeric(&self) -> impl Iterator<Item = &FeatureInfo> {
        self.features.iter().filter(|f| f.kind != FeatureKind::Categorical)
    }

    fn categorical(&self) -> impl Iterator<Item = &FeatureInfo> {
        self.features.iter().filter(|f| f.kind == FeatureKind::Categorical)
    }

    /// Number of design-matrix columns.
    pub(crate) fn width(&self) -> usize {
        self.numeric().count() + self.categorical().map(|f| f.categories.len()).sum::<usize>()
    }

    /// Names of the design-matrix columns (`feature` or `feature=category`).
    pub(crate) fn column_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.numeric().map(|f| f.name.clone()).collect();
        for f in self.categorical() {
            names.extend(f.categories.iter().map(|c| format!("{}={c}", f.name)));
        }
        names
    }

    /// Shift subtracted from a filled numeric value (float32, as in the graph).
    fn shift(&self, f: &FeatureInfo) -> f32 {
        if self.standardize && f.kind == FeatureKind::Numerical { f.fill as f32 } else { 0.0 }
    }

    /// The design matrix of `data`, which must hold every fitted feature with the same kind.
    pub(crate) fn transform(&self, data: &Data) -> Result<Matrix> {
        let rows = data.rows();
        let cols = self.width();
        let mut out = Matrix { rows, cols, data: vec![0.0; rows * cols] };
        let mut col = 0;
        for f in self.numeric() {
            let column = self.column(data, f)?;
            let fill = f.fill as f32 as f64;
            let shift = self.shift(f) as f64;
            let scale = f.scale as f32 as f64;
            for i in 0..rows {
                let raw = match column {
                    Column::Numerical(v) => f32_exact(v[i]),
                    Column::Boolean(v) => v[i].map_or(f64::NAN, |b| if b { 1.0 } else { 0.0 }),
                    Column::Categorical(_) => unreachable!("kinds checked in column()"),
                };
                let filled = if raw.is_nan() { fill } else { raw };
                out.data[i * cols + col] = if self.standardize { (filled - shift) / scale } else { filled };
            }
            col += 1;
        }
        for f in self.categorical() {
            let Column::Categorical(values) = self.column(data, f)? else { unreachable!("kinds checked in column()") };
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v
                    && let Ok(k) = f.categories.binary_search(v)
                {
                    out.data[i * cols + col + k] = 1.0;
                }
            }
            col += f.categories.len();
        }
        Ok(out)
    }

    fn column<'a>(&self, data: &'a Data, f: &FeatureInfo) -> Result<&'a Column> {
        let column =
            data.column(&f.name).ok_or_else(|| Error::InvalidData(format!("feature '{}' is missing", f.name)))?;
        if column.kind() != f.kind {
            return Err(Error::InvalidData(format!(
                "feature '{}' is {:?}, the model was trained on {:?}",
                f.name,
                column.kind(),
                f.kind
            )));
        }
        Ok(column)
    }

    /// Adds the graph inputs and the preprocessing nodes; returns the name of the float design
    /// matrix `[N, width]`.
    pub(crate) fn to_onnx(&self, b: &mut GraphBuilder, layout: &InputLayout) -> Result<String> {
        let numeric: Vec<&FeatureInfo> = self.numeric().collect();
        // The numeric block [N, k], one column per numerical or boolean feature.
        let block = match layout {
            InputLayout::PerFeature => {
                for f in &self.features {
                    let elem_type = if f.kind == FeatureKind::Categorical { ElemType::String } else { ElemType::Float };
                    b.graph.inputs.push(ValueInfo {
                        name: f.name.clone(),
                        elem_type,
                        shape: vec![Dim::Param("N"), Dim::Fixed(1)],
                    });
                }
                match numeric.len() {
                    0 => None,
                    1 => Some(numeric[0].name.clone()),
                    _ => {
                        let names: Vec<&str> = numeric.iter().map(|f| f.name.as_str()).collect();
                        Some(b.op("Concat", &names, vec![("axis", AttrValue::Int(1))]))
                    }
                }
            }
            InputLayout::Matrix { name } => {
                if let Some(f) = self.categorical().next() {
                    return Err(Error::Unsupported(format!(
                        "the one-tensor input layout takes only numerical and boolean features, '{}' is categorical",
                        f.name
                    )));
                }
                b.graph.inputs.push(ValueInfo {
                    name: name.clone(),
                    elem_type: ElemType::Float,
                    shape: vec![Dim::Param("N"), Dim::Fixed(numeric.len() as i64)],
                });
                Some(name.clone())
            }
        };

        let mut parts = Vec::new();
        if let Some(block) = block {
            let k = numeric.len() as i64;
            let fill = b.floats("fill", vec![k], numeric.iter().map(|f| f.fill as f32).collect());
            let nan = b.op("IsNaN", &[&block], vec![]);
            let mut x = b.op("Where", &[&nan, &fill, &block], vec![]);
            if self.standardize {
                let shift = b.floats("shift", vec![k], numeric.iter().map(|f| self.shift(f)).collect());
                let scale = b.floats("scale", vec![k], numeric.iter().map(|f| f.scale as f32).collect());
                let centered = b.op("Sub", &[&x, &shift], vec![]);
                x = b.op("Div", &[&centered, &scale], vec![]);
            }
            parts.push(x);
        }
        for f in self.categorical().filter(|f| !f.categories.is_empty()) {
            // OneHotEncoder maps [N, 1] to [N, 1, C]; zeros=1 makes an unknown category all zeros.
            let onehot = b.fresh("onehot");
            b.node(
                "OneHotEncoder",
                ML_DOMAIN,
                &[&f.name],
                &[&onehot],
                vec![("cats_strings", AttrValue::Strings(f.categories.clone())), ("zeros", AttrValue::Int(1))],
            );
            let shape = b.int64s("shape", vec![2], vec![-1, f.categories.len() as i64]);
            parts.push(b.op("Reshape", &[&onehot, &shape], vec![]));
        }
        match parts.len() {
            0 => Err(Error::InvalidData("no usable features: every feature is empty or constant".into())),
            1 => Ok(parts.pop().expect("one part")),
            _ => {
                let names: Vec<&str> = parts.iter().map(String::as_str).collect();
                Ok(b.op("Concat", &names, vec![("axis", AttrValue::Int(1))]))
            }
        }
    }
}

/// Mean and population standard deviation; (0, 0) for no values.
fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Feature;

    fn data() -> Data {
        Data::new(vec![
            Feature::categorical("c", vec![Some("b".into()), Some("a".into()), None, Some("b".into())]),
            Feature::numerical("x", vec![1.0, 3.0, f64::NAN, 2.0]),
            Feature::boolean("flag", vec![Some(true), None, Some(false), Some(true)]),
        ])
        .unwrap()
    }

    #[test]
    fn fits_and_transforms() {
        let p = Preprocessor::fit(&data(), true).unwrap();
        assert_eq!(p.column_names(), ["x", "flag", "c=a", "c=b"]);
        let x = &p.features[1];
        assert_eq!(x.fill, 2.0);
        assert!((x.scale - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        let m = p.transform(&data()).unwrap();
        assert_eq!(m.cols, 4);
        // Missing number -> mean -> 0 after standardizing; missing boolean -> share of true (2/3).
        assert_eq!(m.row(2)[0], 0.0);
        assert!((m.row(1)[1] - 2.0 / 3.0).abs() < 1e-7);
        assert_eq!(&m.row(0)[2..], &[0.0, 1.0]);
        assert_eq!(&m.row(2)[2..], &[0.0, 0.0]);
    }

    #[test]
    fn unknown_category_is_all_zeros() {
        let p = Preprocessor::fit(&data(), false).unwrap();
        let new = Data::new(vec![
            Feature::categorical("c", vec![Some("zzz".into())]),
            Feature::numerical("x", vec![5.0]),
            Feature::boolean("flag", vec![Some(false)]),
        ])
        .unwrap();
        let m = p.transform(&new).unwrap();
        assert_eq!(m.row(0), &[5.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn wrong_kind_is_an_error() {
        let p = Preprocessor::fit(&data(), false).unwrap();
        let new = Data::new(vec![
            Feature::numerical("c", vec![1.0]),
            Feature::numerical("x", vec![5.0]),
            Feature::boolean("flag", vec![Some(false)]),
        ])
        .unwrap();
        assert!(p.transform(&new).is_err());
    }
}

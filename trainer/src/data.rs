//! Training and scoring data as plain Rust columns, so callers convert from Arrow (or anything) once.

use crate::{Error, Result};

/// The values of one feature, one entry per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numbers; `NaN` marks a missing value (an Arrow null becomes `NaN`).
    Numerical(Vec<f64>),
    /// Booleans; `None` is missing.
    Boolean(Vec<Option<bool>>),
    /// Categories; `None` (and the empty string, which is how the predictor passes a missing
    /// category to an ONNX model) is missing.
    Categorical(Vec<Option<String>>),
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Numerical(v) => v.len(),
            Column::Boolean(v) => v.len(),
            Column::Categorical(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind of feature this column holds.
    pub fn kind(&self) -> FeatureKind {
        match self {
            Column::Numerical(_) => FeatureKind::Numerical,
            Column::Boolean(_) => FeatureKind::Boolean,
            Column::Categorical(_) => FeatureKind::Categorical,
        }
    }
}

/// The kinds of feature the built-in trainers use (text and embedding features are left out by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A number: standardized for linear models, raw for trees; missing becomes the training mean.
    Numerical,
    /// A boolean: 0.0 / 1.0; missing becomes the training share of `true`.
    Boolean,
    /// A category: one-hot over the training categories; unknown or missing gives all zeros.
    Categorical,
}

/// A named feature column.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// Feature name, as in the model's schema (and the ONNX input name).
    pub name: String,
    /// The values.
    pub column: Column,
}

impl Feature {
    /// A numerical feature (`NaN` is missing).
    pub fn numerical(name: impl Into<String>, values: Vec<f64>) -> Self {
        Feature { name: name.into(), column: Column::Numerical(values) }
    }

    /// A boolean feature.
    pub fn boolean(name: impl Into<String>, values: Vec<Option<bool>>) -> Self {
        Feature { name: name.into(), column: Column::Boolean(values) }
    }

    /// A categorical feature.
    pub fn categorical(name: impl Into<String>, values: Vec<Option<String>>) -> Self {
        Feature { name: name.into(), column: Column::Categorical(values) }
    }
}

/// Rows of features: equally long columns with unique names.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    features: Vec<Feature>,
    rows: usize,
}

impl Data {
    /// Checks that the columns have the same length and unique, non-empty names.
    pub fn new(features: Vec<Feature>) -> Result<Self> {
        let rows = features.first().map_or(0, |f| f.column.len());
        for (i, f) in features.iter().enumerate() {
            if f.name.is_empty() {
                return Err(Error::InvalidData(format!("feature {i} has an empty name")));
            }
            if f.column.len() != rows {
                return Err(Error::InvalidData(format!(
                    "feature '{}' has {} rows, expected {rows} (as the first feature)",
                    f.name,
                    f.column.len()
                )));
            }
            if features[..i].iter().any(|g| g.name == f.name) {
                return Err(Error::InvalidData(format!("feature '{}' appears twice", f.name)));
            }
        }
        Ok(Data { features, rows })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The feature columns, in the order given.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// The column of the feature named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.features.iter().find(|f| f.name == name).map(|f| &f.column)
    }
}

/// What the model learns to predict, one entry per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Class labels (classification). Booleans are passed as `"true"` / `"false"`.
    Classes(Vec<String>),
    /// Numbers (regression); must be finite.
    Values(Vec<f64>),
}

impl Target {
    fn len(&self) -> usize {
        match self {
            Target::Classes(v) => v.len(),
            Target::Values(v) => v.len(),
        }
    }
}

/// Features and target of a training set.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainData {
    /// The features.
    pub features: Data,
    /// The target, as long as the features.
    pub target: Target,
}

impl TrainData {
    /// Checks that the target is as long as the features, finite, and has at least one row.
    pub fn new(features: Data, target: Target) -> Result<Self> {
        if target.len() != features.rows() {
            return Err(Error::InvalidData(format!(
                "the target has {} rows but the features have {}",
                target.len(),
                features.rows()
            )));
        }
        if features.rows() == 0 {
            return Err(Error::InvalidData("no training rows".into()));
        }
        if let Target::Values(v) = &target
            && let Some(i) = v.iter().position(|x| !x.is_finite())
        {
            return Err(Error::InvalidData(format!("target of row {i} is not a finite number")));
        }
        Ok(TrainData { features, target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ragged_and_duplicate_columns() {
        let a = Feature::numerical("a", vec![1.0, 2.0]);
        let b = Feature::boolean("b", vec![Some(true)]);
        assert!(Data::new(vec![a.clone(), b]).is_err());
        assert!(Data::new(vec![a.clone(), a.clone()]).is_err());
        let data = Data::new(vec![a]).unwrap();
        assert!(TrainData::new(data.clone(), Target::Values(vec![1.0])).is_err());
        assert!(TrainData::new(data.clone(), Target::Values(vec![1.0, f64::NAN])).is_err());
        assert!(TrainData::new(data, Target::Values(vec![1.0, 2.0])).is_ok());
    }
}

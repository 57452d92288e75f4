//! A model's schema: its features, prediction, scores and label, and the Arrow schemas stored.
//!
//! Declared in config ([`SchemaConfig`]) or inferred once from a reference file (Parquet or CSV)
//! and then fixed. Stored columns, in order:
//!
//! | column | Arrow type | notes |
//! | --- | --- | --- |
//! | `prediction_id` | Utf8 | UUIDv7 generated when absent |
//! | `timestamp` | Timestamp(µs, UTC) | event time; arrival time when absent |
//! | `model_version` | Utf8, nullable | |
//! | one per feature | by [`FeatureKind`] | nullable (null = missing value) |
//! | `prediction` | by [`ValueKind`] | required |
//! | `score_<class>` | Float64, nullable | one per declared score |
//!
//! Labels are stored as `prediction_id`, `label`, `timestamp` (label time) and `received_at`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Column names with a fixed meaning; features may not use them.
pub const RESERVED: [&str; 6] = ["prediction_id", "timestamp", "model_version", "prediction", "label", "received_at"];

/// The kind of a feature, which decides its stored type and the drift tests that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A number, stored as Float64. Integers are widened.
    Numerical,
    /// A category, stored as Utf8. Integers and booleans become their text.
    Categorical,
    /// `true` or `false` (or 0/1), stored as Boolean.
    Boolean,
    /// Free text, stored as Utf8.
    Text,
    /// A fixed-size vector of numbers, stored as FixedSizeList<Float32>; needs `dim`.
    Embedding,
}

/// The kind of a prediction or a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// Regression: stored as Float64.
    Numerical,
    /// Classification: the class, stored as Utf8 (integers and booleans become their text).
    Categorical,
    /// Binary classification as `true`/`false`, stored as Boolean.
    Boolean,
}

/// One feature of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Column name, e.g. `"age"`. Letters, digits, `_`, `-`, `.`; not a reserved name.
    pub name: String,
    /// `numerical`, `categorical`, `boolean`, `text` or `embedding`.
    pub kind: FeatureKind,
    /// Vector length, for `embedding` only. Example: `384`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    /// Whether the feature may be absent or null in a record (a missing value). Default `true`.
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

/// `[models.schema]`: what a model's records hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// The features, in order. Example: `[{ name = "age", kind = "numerical" }]`.
    /// Leave empty to infer them from `infer_from`.
    #[serde(default)]
    pub features: Vec<FeatureConfig>,
    /// The prediction's kind: `numerical`, `categorical` or `boolean`. Default: `numerical`, or
    /// the type of the reference file's prediction column when inferring.
    #[serde(default)]
    pub prediction: Option<ValueKind>,
    /// The label's kind. Default: the prediction's kind.
    #[serde(default)]
    pub label: Option<ValueKind>,
    /// Class names whose scores (probabilities) come with each prediction, stored as
    /// `score_<class>`. Example: `["no", "yes"]`. Default: none.
    #[serde(default)]
    pub scores: Vec<String>,
    /// A reference file (Parquet or CSV) to infer the features from when `features` is empty.
    /// Numbers become numerical, strings categorical, booleans boolean. The inferred schema is
    /// saved in the store and stays fixed even if the file changes later.
    #[serde(default)]
    pub infer_from: Option<std::path::PathBuf>,
    /// In `infer_from`: the column holding the prediction (not a feature). Default `"prediction"`.
    #[serde(default = "default_prediction_column")]
    pub prediction_column: String,
    /// In `infer_from`: the column holding the label (not a feature). Default `"target"`.
    #[serde(default = "default_label_column")]
    pub label_column: String,
}

fn default_prediction_column() -> String {
    "prediction".into()
}

fn default_label_column() -> String {
    "target".into()
}

/// A model's fixed schema and the Arrow schemas its data is stored with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSchema {
    /// Features in stored order.
    pub features: Vec<FeatureConfig>,
    /// Prediction kind.
    pub prediction: ValueKind,
    /// Label kind.
    pub label: ValueKind,
    /// Score class names; stored as `score_<class>`.
    pub scores: Vec<String>,
}

/// Whether a name is safe as a model or column name: 1 to 64 of `[A-Za-z0-9_.-]`, starting with a
/// letter or digit (so no `..`, no `/`, no hidden files).
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl ModelSchema {
    /// Builds the schema a config declares, inferring from `infer_from` when no features are listed.
    /// `base` resolves a relative `infer_from`.
    pub fn from_config(config: &SchemaConfig, base: &Path) -> Result<Self> {
        let schema = if config.features.is_empty() {
            let Some(path) = &config.infer_from else {
                return Err(Error::Schema(
                    "no features declared and no `infer_from` reference file to infer them from".into(),
                ));
            };
            Self::infer(&base.join(path), config)?
        } else {
            let prediction = config.prediction.unwrap_or(ValueKind::Numerical);
            Self {
                features: config.features.clone(),
                prediction,
                label: config.label.unwrap_or(prediction),
                scores: config.scores.clone(),
            }
        };
        schema.validate()?;
        Ok(schema)
    }

    /// Infers features from a reference file's columns (see [`SchemaConfig::infer_from`]).
    pub fn infer(path: &Path, config: &SchemaConfig) -> Result<Self> {
        let file_schema = read_file_schema(path)?;
        let mut features = Vec::new();
        let mut prediction = config.prediction;
        let mut label = config.label;
        let mut scores = config.scores.clone();
        for field in file_schema.fields() {
            let name = field.name().as_str();
            if name == config.prediction_column {
                prediction = prediction.or(Some(value_kind_of(field.data_type(), path, name)?));
            } else if name == config.label_column {
                label = label.or(Some(value_kind_of(field.data_type(), path, name)?));
            } else if let Some(class) = name.strip_prefix("score_") {
                if !scores.iter().any(|s| s == class) {
                    scores.push(class.to_string());
                }
            } else if matches!(name, "prediction_id" | "timestamp" | "model_version" | "received_at") {
            } else {
                features.push(FeatureConfig {
                    name: name.to_string(),
                    kind: feature_kind_of(field.data_type(), path, name)?,
                    dim: None,
                    nullable: true,
                });
            }
        }
        let prediction = prediction.unwrap_or(ValueKind::Numerical);
        Ok(Self { features, prediction, label: label.unwrap_or(prediction), scores })
    }

    /// Checks names and kinds: valid, unique, not reserved, `dim` exactly on embeddings.
    pub fn validate(&self) -> Result<()> {
        let mut seen = HashMap::new();
        if self.features.is_empty() {
            return Err(Error::Schema("a model needs at least one feature".into()));
        }
        for (i, f) in self.features.iter().enumerate() {
            let at = format!("features[{i}] (`{}`)", f.name);
            if !is_valid_name(&f.name) {
                return Err(Error::Schema(format!(
                    "{at}: a name is 1 to 64 of A-Z a-z 0-9 _ - . starting with a letter or digit"
                )));
            }
            if RESERVED.contains(&f.name.as_str()) || f.name.starts_with("score_") {
                return Err(Error::Schema(format!("{at}: `{}` is reserved for anchorwatch's own columns", f.name)));
            }
            if let Some(first) = seen.insert(f.name.as_str(), i) {
                return Err(Error::Schema(format!("{at}: same name as features[{first}]")));
            }
            match (f.kind, f.dim) {
                (FeatureKind::Embedding, None | Some(0)) => {
                    return Err(Error::Schema(format!("{at}: an embedding needs `dim`, its vector length (> 0)")));
                }
                (FeatureKind::Embedding, Some(_)) | (_, None) => {}
                (_, Some(_)) => return Err(Error::Schema(format!("{at}: `dim` applies to embeddings only"))),
            }
        }
        for (i, s) in self.scores.iter().enumerate() {
            if !is_valid_name(s) {
                return Err(Error::Schema(format!(
                    "scores[{i}] (`{s}`): a class name is 1 to 64 of A-Z a-z 0-9 _ - ."
                )));
            }
        }
        Ok(())
    }

    /// Stored column name of a score class.
    pub fn score_column(class: &str) -> String {
        format!("score_{class}")
    }

    /// The Arrow schema of stored predictions.
    pub fn predictions_schema(&self) -> SchemaRef {
        let mut fields = vec![
            Field::new("prediction_id", DataType::Utf8, false),
            Field::new("timestamp", timestamp_type(), false),
            Field::new("model_version", DataType::Utf8, true),
        ];
        fields.extend(self.features.iter().map(|f| Field::new(&f.name, feature_type(f), true)));
        fields.push(Field::new("prediction", value_type(self.prediction), false));
        fields.extend(self.scores.iter().map(|c| Field::new(Self::score_column(c), DataType::Float64, true)));
        Arc::new(Schema::new(fields))
    }

    /// The Arrow schema of stored labels.
    pub fn labels_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("prediction_id", DataType::Utf8, false),
            Field::new("label", value_type(self.label), false),
            Field::new("timestamp", timestamp_type(), false),
            Field::new("received_at", timestamp_type(), false),
        ]))
    }
}

/// Timestamps are stored as microseconds since the epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Stored type of a feature.
pub fn feature_type(f: &FeatureConfig) -> DataType {
    match f.kind {
        FeatureKind::Numerical => DataType::Float64,
        FeatureKind::Categorical | FeatureKind::Text => DataType::Utf8,
        FeatureKind::Boolean => DataType::Boolean,
        FeatureKind::Embedding => {
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), f.dim.unwrap_or(1) as i32)
        }
    }
}

/// Stored type of a prediction or label.
pub fn value_type(kind: ValueKind) -> DataType {
    match kind {
        ValueKind::Numerical => DataType::Float64,
        ValueKind::Categorical => DataType::Utf8,
        ValueKind::Boolean => DataType::Boolean,
    }
}

fn read_file_schema(path: &Path) -> Result<Schema> {
    let open = |p: &Path| {
        std::fs::File::open(p).map_err(|e| Error::Schema(format!("cannot open reference file {}: {e}", p.display())))
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "parquet" => {
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                .map_err(|e| Error::Schema(format!("{} is not a readable Parquet file: {e}", path.display())))?;
            Ok(builder.schema().as_ref().clone())
        }
        "csv" => {
            let format = arrow::csv::reader::Format::default().with_header(true);
            let (schema, _) = format
                .infer_schema(open(path)?, Some(10_000))
                .map_err(|e| Error::Schema(format!("{} is not a readable CSV file: {e}", path.display())))?;
            Ok(schema)
        }
        _ => Err(Error::Schema(format!("{}: a reference file must end in .parquet or .csv", path.display()))),
    }
}

fn feature_kind_of(t: &DataType, path: &Path, column: &str) -> Result<FeatureKind> {
    Ok(match t {
        t if t.is_numeric() => FeatureKind::Numerical,
        DataType::Boolean => FeatureKind::Boolean,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            FeatureKind::Categorical
        }
        other => {
            return Err(Error::Schema(format!(
                "{}: column `{column}` has type {other}, which anchorwatch cannot infer a feature kind from; declare the features in config",
                path.display()
            )));
        }
    })
}

fn value_kind_of(t: &DataType, path: &Path, column: &str) -> Result<ValueKind> {
    Ok(match feature_kind_of(t, path, column)? {
        FeatureKind::Numerical if matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64) => {
            ValueKind::Numerical
        }
        // Integer predictions are class ids far more often than regression outputs.
        FeatureKind::Numerical | FeatureKind::Categorical => ValueKind::Categorical,
        FeatureKind::Boolean => ValueKind::Boolean,
        FeatureKind::Text | FeatureKind::Embedding => unreachable!("never inferred"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_path_tricks() {
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "é", "a b", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?} accepted");
        }
        for good in ["credit", "fraud-v2", "m.1", "A_b"] {
            assert!(is_valid_name(good), "{good:?} rejected");
        }
    }

    #[test]
    fn reserved_and_duplicate_features_are_refused() {
        let f =
            |name: &str| FeatureConfig { name: name.into(), kind: FeatureKind::Numerical, dim: None, nullable: true };
        let s = |features| ModelSchema {
            features,
            prediction: ValueKind::Numerical,
            label: ValueKind::Numerical,
            scores: vec![],
        };
        assert!(s(vec![f("prediction")]).validate().unwrap_err().to_string().contains("reserved"));
        assert!(s(vec![f("a"), f("a")]).validate().unwrap_err().to_string().contains("same name as features[0]"));
        assert!(s(vec![f("a")]).validate().is_ok());
    }

    #[test]
    fn infers_from_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ref.csv");
        std::fs::write(
            &path,
            "age,city,flag,prediction,target,score_yes\n31,Oslo,true,0.5,1,0.9\n40,Rome,false,0.1,0,0.2\n",
        )
        .unwrap();
        let config = SchemaConfig {
            infer_from: Some(path.clone()),
            prediction_column: "prediction".into(),
            label_column: "target".into(),
            ..Default::default()
        };
        let s = ModelSchema::from_config(&config, dir.path()).unwrap();
        let kinds: Vec<_> = s.features.iter().map(|f| (f.name.as_str(), f.kind)).collect();
        assert_eq!(
            kinds,
            [("age", FeatureKind::Numerical), ("city", FeatureKind::Categorical), ("flag", FeatureKind::Boolean)]
        );
        assert_eq!((s.prediction, s.label), (ValueKind::Numerical, ValueKind::Categorical));
        assert_eq!(s.scores, ["yes"]);
    }
}

//! The reference a model's traffic is compared with: where it comes from, and its profile.
//!
//! The active reference lives in the store at `<model>/reference/reference.{parquet,csv}` with
//! `profile.json` beside it (its source, fingerprint, columns and summary). It comes from, in
//! order: an upload (`POST /v1/models/{model}/reference`), the file named in config (copied into
//! the store on first start, and again whenever the file changes), or the first
//! `reference_rows` collected predictions with their labels.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anchorwatch_collector::schema::{FeatureKind, ModelSchema, ValueKind};
use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::data::{Column, Frame};
use super::{Error, Result};

/// How a stored reference file names the prediction and the label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// `config:<path>`, `upload` or `traffic`.
    pub source: String,
    /// Fingerprint of the file's bytes (length and CRC-32); a new one means every window is
    /// recomputed.
    pub version: String,
    /// `parquet` or `csv`.
    pub format: String,
    /// Column of the file holding the prediction.
    pub prediction_column: String,
    /// Column of the file holding the label.
    pub target_column: String,
    /// Rows in the reference.
    pub rows: usize,
    /// Realized performance of the model on its reference, by metric, when it has labels.
    #[serde(default)]
    pub performance: std::collections::BTreeMap<String, f64>,
}

/// The columns the analysis reads: every feature, the prediction, the label and the scores,
/// with whether each is numeric (embeddings are read as vectors either way).
pub fn analysed_columns(schema: &ModelSchema) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> =
        schema.features.iter().map(|f| (f.name.clone(), f.kind == FeatureKind::Numerical)).collect();
    out.push(("prediction".into(), schema.prediction == ValueKind::Numerical));
    out.push(("label".into(), schema.label == ValueKind::Numerical));
    out.extend(schema.scores.iter().map(|c| (ModelSchema::score_column(c), true)));
    out
}

/// A loaded reference and what each window compares with.
#[derive(Debug)]
pub struct Reference {
    /// Where it came from and its fingerprint.
    pub profile: Profile,
    /// Its columns, under the stored names (`prediction`, `label`, `score_<class>`).
    pub frame: Frame,
    /// Smallest and largest finite value of each numerical column.
    pub ranges: HashMap<String, (f64, f64)>,
    /// Categories seen in each categorical column.
    pub categories: HashMap<String, HashSet<String>>,
    baseline: std::sync::OnceLock<super::performance::Baseline>,
    multivariate: std::sync::OnceLock<super::multivariate::Fitted>,
}

/// Fingerprint of reference bytes.
pub fn fingerprint(data: &[u8]) -> String {
    format!("{}-{:08x}", data.len(), crc32fast::hash(data))
}

/// Decodes reference bytes (Parquet or CSV) into batches.
pub fn decode(data: Bytes, format: &str) -> Result<Vec<RecordBatch>> {
    match format {
        "parquet" => {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)
                .map_err(|e| Error::Reference(format!("not a readable Parquet file: {e}")))?
                .build()?;
            Ok(reader.collect::<Result<Vec<_>, _>>()?)
        }
        "csv" => {
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(std::io::Cursor::new(&data), Some(10_000))
                .map_err(|e| Error::Reference(format!("not a readable CSV file: {e}")))?;
            let reader =
                arrow::csv::ReaderBuilder::new(Arc::new(schema)).with_header(true).build(std::io::Cursor::new(data))?;
            Ok(reader.collect::<Result<Vec<_>, _>>()?)
        }
        other => Err(Error::Reference(format!("a reference must be Parquet or CSV, not `{other}`"))),
    }
}

/// Renames the file's prediction and target columns to the stored names.
fn renamed(batches: Vec<RecordBatch>, profile: &Profile) -> Result<Vec<RecordBatch>> {
    batches
        .into_iter()
        .map(|b| {
            let fields: Vec<Field> = b
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    let name = if *f.name() == profile.prediction_column {
                        "prediction"
                    } else if *f.name() == profile.target_column {
                        "label"
                    } else {
                        f.name().as_str()
                    };
                    f.as_ref().clone().with_name(name)
                })
                .collect();
            Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), b.columns().to_vec())?)
        })
        .collect()
}

impl Reference {
    /// Builds the reference from decoded batches, checking every feature is there.
    pub fn new(batches: Vec<RecordBatch>, schema: &ModelSchema, mut profile: Profile) -> Result<Self> {
        let batches = renamed(batches, &profile)?;
        let wanted = analysed_columns(schema);
        let frame = Frame::from_batches(&batches, &wanted)?;
        if frame.rows == 0 {
            return Err(Error::Reference("the reference has no rows".into()));
        }
        let missing: Vec<&str> = schema
            .features
            .iter()
            .filter(|f| f.kind != FeatureKind::Embedding && frame.get(&f.name).is_none())
            .map(|f| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Reference(format!("the reference lacks feature column(s): {}", missing.join(", "))));
        }
        profile.rows = frame.rows;
        let mut ranges = HashMap::new();
        let mut categories = HashMap::new();
        for (name, column) in &frame.columns {
            match column {
                Column::Numbers(v) => {
                    let finite = v.iter().copied().filter(|x| x.is_finite());
                    let (lo, hi) =
                        finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
                    if lo <= hi {
                        ranges.insert(name.clone(), (lo, hi));
                    }
                }
                // Free text has no categories to be new to: every text would be one.
                Column::Strings(_)
                    if schema.features.iter().any(|f| f.name == *name && f.kind == FeatureKind::Text) => {}
                Column::Strings(a) => {
                    categories.insert(name.clone(), a.iter().flatten().map(str::to_string).collect());
                }
                Column::Vectors(_) => {}
            }
        }
        Ok(Self {
            profile,
            frame,
            ranges,
            categories,
            baseline: std::sync::OnceLock::new(),
            multivariate: std::sync::OnceLock::new(),
        })
    }

    /// The multivariate drift methods fitted on this reference, computed on first use.
    pub fn multivariate(&self, schema: &ModelSchema, config: &super::AnalysisConfig) -> &super::multivariate::Fitted {
        self.multivariate.get_or_init(|| super::multivariate::fit(&self.frame, schema, config))
    }

    /// The model's performance on its own reference, and the estimator fitted there; computed
    /// on first use, then reused by every window.
    pub fn performance(&self, schema: &ModelSchema, config: &super::AnalysisConfig) -> &super::performance::Baseline {
        self.baseline.get_or_init(|| super::performance::Baseline {
            realized: super::performance::realized(&self.frame, schema, config),
            cbpe: super::performance::fit_cbpe(&self.frame, schema, config),
            thresholds: super::performance::thresholds(&self.frame, schema, config),
        })
    }
}

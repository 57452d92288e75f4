//! The drift report's data model: exactly what `anchorwatch report --format json` prints and
//! what the HTML page shows. Field names are part of the documented, stable JSON format
//! (docs/report.md); add fields, never rename or remove them.

use serde::Serialize;

/// A whole report: the dataset verdict, one entry per compared column, row counts.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The dataset-level verdict (Evidently's share rule).
    pub dataset_drift: DatasetVerdict,
    /// Compared columns, in the reference file's column order.
    pub columns: Vec<ColumnReport>,
    /// Rows read from each file.
    pub rows: Sides<u64>,
    /// Columns present in the inputs but not compared, with the reason.
    pub skipped: Vec<Skipped>,
    /// Drift of the tabular features taken together (empty with fewer than two of them).
    pub multivariate: Vec<Multivariate>,
    /// The input files as given on the command line.
    pub files: Sides<String>,
}

/// A multivariate method's verdict on the features together.
#[derive(Debug, Clone, Serialize)]
pub struct Multivariate {
    /// The method: `data_reconstruction` (NannyML's data reconstruction drift).
    pub method: String,
    /// The features it read, in order.
    pub features: Vec<String>,
    /// The result, or why it could not be computed.
    #[serde(flatten)]
    pub outcome: MultivariateOutcome,
}

/// A multivariate method's result, flattened into its JSON object.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MultivariateOutcome {
    /// The method ran.
    Computed {
        /// The current dataset's value (for `data_reconstruction`, the mean reconstruction error).
        value: f64,
        /// The band's lower bound from the reference chunks (`null`: none).
        lower: Option<f64>,
        /// The band's upper bound (`null`: none).
        upper: Option<f64>,
        /// Whether the value is outside the band.
        drifted: bool,
        /// The value of each reference chunk the band comes from.
        reference_chunks: Vec<f64>,
    },
    /// The method could not run.
    Failed {
        /// Why, for people.
        error: String,
    },
}

/// A pair of values, one per dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Sides<T> {
    /// The reference dataset's value.
    pub reference: T,
    /// The current dataset's value.
    pub current: T,
}

/// Evidently's dataset drift verdict: drifted when `share ≥ threshold`.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetVerdict {
    /// Whether the dataset drifted.
    pub drifted: bool,
    /// drifted_columns / columns (0 when no column could be computed).
    pub share: f64,
    /// The share threshold.
    pub threshold: f64,
    /// Columns that drifted.
    pub drifted_columns: usize,
    /// Columns whose drift could be computed (columns with an `error` do not count).
    pub columns: usize,
}

/// The role a column plays for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An input of the model.
    Feature,
    /// The model's output (prediction drift).
    Prediction,
    /// The ground truth (target drift).
    Target,
}

/// One column's verdict and summaries.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnReport {
    /// The column name.
    pub name: String,
    /// Feature, prediction or target.
    pub role: Role,
    /// Evidently's short kind name: `num`, `cat` or `text`, or `embedding`.
    pub kind: String,
    /// The test's result, or why it could not run.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Summary of the reference values.
    pub reference: Summary,
    /// Summary of the current values.
    pub current: Summary,
}

impl ColumnReport {
    /// Whether the column drifted (false when its drift could not be computed).
    pub fn drifted(&self) -> bool {
        matches!(self.outcome, Outcome::Computed { drifted: true, .. })
    }
}

/// A column's test result, flattened into the column's JSON object.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// The test ran.
    Computed {
        /// The test's Evidently name.
        stattest: String,
        /// A p-value or a distance, depending on the test (`null` in JSON when NaN).
        score: f64,
        /// The threshold the score was compared with.
        threshold: f64,
        /// The verdict.
        drifted: bool,
    },
    /// The test could not run (e.g. a side has no values).
    Failed {
        /// Why, for people.
        error: String,
    },
}

/// A summary of one side of a column; its shape follows the column kind.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Summary {
    /// For `num` columns.
    Numerical(NumericalSummary),
    /// For `cat` columns.
    Categorical(CategoricalSummary),
    /// For `text` columns.
    Text(TextSummary),
    /// For `embedding` columns.
    Embedding(EmbeddingSummary),
}

impl Summary {
    /// Values present (not missing).
    pub fn count(&self) -> u64 {
        match self {
            Summary::Numerical(s) => s.count,
            Summary::Categorical(s) => s.count,
            Summary::Text(s) => s.count,
            Summary::Embedding(s) => s.count,
        }
    }
}

/// Embeddings: how many, their length, and the Euclidean norms of the vectors.
#[derive(Debug, Clone, Serialize, Default)]
pub struct EmbeddingSummary {
    /// Rows with a complete vector (every value finite).
    pub count: u64,
    /// Null rows and rows holding a missing or infinite value (left out of the test).
    pub missing: u64,
    /// Values per vector.
    pub dims: u64,
    /// Euclidean norm of the mean vector (the centroid's distance from the origin).
    pub mean_norm: Option<f64>,
    /// Euclidean norm of each vector: moments, quantiles and a histogram over edges shared
    /// with the other side (`count`/`missing` as above, `infinite` always 0).
    pub norm: NumericalSummary,
}

/// Texts: their lengths, and the words the drift classifier found typical of this side.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TextSummary {
    /// Non-missing texts.
    pub count: u64,
    /// Null texts.
    pub missing: u64,
    /// Distinct texts on this side.
    pub unique: u64,
    /// Mean number of words (whitespace-separated) per text.
    pub mean_words: Option<f64>,
    /// Length in characters: moments, quantiles and a histogram over edges shared with the
    /// other side (`count`/`missing` as above, `infinite` always 0).
    pub length: NumericalSummary,
    /// Up to 25 words whose classifier weights point most to this side, strongest first
    /// (Evidently's "typical words"; empty when the classifier did not run).
    pub typical_words: Vec<String>,
}

/// Numbers: moments, quantiles and a histogram over edges shared with the other side.
#[derive(Debug, Clone, Serialize, Default)]
pub struct NumericalSummary {
    /// Finite values.
    pub count: u64,
    /// Null or NaN values.
    pub missing: u64,
    /// +inf or −inf values (dropped by the tests, as Evidently does).
    pub infinite: u64,
    /// Mean of the finite values.
    pub mean: Option<f64>,
    /// Sample standard deviation (ddof = 1, as pandas) of the finite values.
    pub std: Option<f64>,
    /// Smallest finite value.
    pub min: Option<f64>,
    /// 5th percentile (linear interpolation, numpy's default).
    pub p5: Option<f64>,
    /// 25th percentile.
    pub p25: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 75th percentile.
    pub p75: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// Largest finite value.
    pub max: Option<f64>,
    /// Counts over bins shared by both sides.
    pub histogram: Histogram,
}

/// A histogram: `counts[i]` values in `[edges[i], edges[i+1])`, the last bin closed.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Histogram {
    /// Bin edges, one more than counts (the same for reference and current).
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

/// Categories: the most frequent ones with counts, and what is new.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CategoricalSummary {
    /// Non-missing values.
    pub count: u64,
    /// Null values.
    pub missing: u64,
    /// Distinct non-missing values on this side.
    pub unique: u64,
    /// The top categories of both sides together (same list, same order, on both sides).
    pub top: Vec<CategoryCount>,
    /// Values in categories not listed in `top`.
    pub other: u64,
    /// Current side only: categories absent from the reference (at most 20 listed, by count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_categories: Option<Vec<CategoryCount>>,
    /// Current side only: how many distinct categories are absent from the reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_unique: Option<u64>,
}

/// One category and its count on one side.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CategoryCount {
    /// The category as text.
    pub value: String,
    /// Its count.
    pub count: u64,
}

/// A column left out of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The column name.
    pub name: String,
    /// Why, for people.
    pub reason: String,
}

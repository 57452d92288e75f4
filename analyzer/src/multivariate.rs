//! Multivariate drift: one number for a set of features together, as NannyML 0.13.1 computes
//! it. Univariate tests ([`crate::drift`]) see each column alone; these methods also see a
//! change in how the columns relate (a correlation that breaks while every marginal stays put).
//!
//! [`reconstruction`] is NannyML's `DataReconstructionDriftCalculator`: the reference's
//! principal components are fitted once, and a set of rows drifts when the components
//! reconstruct it worse than they reconstruct the reference. NannyML's rules, each matched:
//!
//! - Missing values are imputed with the reference's mean (numerical) or most frequent value
//!   (categorical, the smallest on ties), as scikit-learn's `SimpleImputer`.
//! - Categorical values become their share of the reference rows (category_encoders'
//!   `CountEncoder(normalize=True)`); a category the reference never saw becomes 0.
//! - Every column is standardised with the reference's mean and population standard deviation
//!   (`StandardScaler`, a near-constant column scaled by 1).
//! - `PCA(n_components=0.65)` keeps the fewest components that explain more than 65% of the
//!   variance; a row's error is the Euclidean distance between its scaled values and their
//!   reconstruction from those components, and a chunk's value is its rows' mean error.
//! - The reference is cut into chunks ([`Chunking`], ten by default) and the alert band is the
//!   mean of the reference chunks' values ± 3 population standard deviations ([`Threshold`]);
//!   a lower bound at or below 0 is dropped. A value alerts unless strictly inside the band.
//!
//! Costs, for a reference of n rows and d features of which the PCA keeps k: fitting is
//! O(n·d²) for the covariance and O(d³) per Jacobi sweep when n ≥ 10·d (scikit-learn's
//! `covariance_eigh`), else O(n·d·min(n, d)) per sweep of the full SVD, plus O(n·d·k) for the
//! reference chunks' errors and O(n·log c) per categorical column of c categories. A window of
//! m rows costs O(m·(d·k + log c)) and no allocation per row. The fitted model holds O(d·k)
//! numbers and the reference's categories.
//!
//! Inputs are borrowed columns ([`Table`]): numerical as `&[f64]` with NaN for a missing
//! value, categorical as `&[Option<&str>]` with `None` for a missing value. A boolean feature
//! is categorical: pass it as `"True"` / `"False"`.

pub mod domain_classifier;
pub mod reconstruction;

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::performance::{PerformanceError, StdMultipliers, ValueRange};

pub use reconstruction::{Chunk, Encoding, Feature, Reconstruction, ReconstructionOptions, Solver};

/// Why a multivariate drift model cannot be fitted or evaluated on the given inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MultivariateError {
    /// The reference has no feature column.
    #[error("no feature columns")]
    NoFeatures,
    /// Two columns of one table have the same name.
    #[error("column {0:?} is given twice")]
    DuplicateColumn(String),
    /// A column's length differs from the table's first column.
    #[error("column {column:?} has {got} rows, the other columns {expected}")]
    LengthMismatch {
        /// The column.
        column: String,
        /// Rows of the table's first column.
        expected: usize,
        /// Rows of this column.
        got: usize,
    },
    /// A feature of the fitted model is not among the rows' columns.
    #[error("column {0:?} is missing")]
    MissingColumn(String),
    /// A feature is numerical on one side and categorical on the other.
    #[error("column {column:?} is {got} but was {expected} in the reference")]
    KindMismatch {
        /// The column.
        column: String,
        /// Its kind in the reference.
        expected: Kind,
        /// Its kind in the rows given now.
        got: Kind,
    },
    /// A numerical value is ±inf (NaN is a missing value and is imputed; scikit-learn refuses
    /// infinities).
    #[error("column {column:?} holds an infinite value at row {row}")]
    Infinite {
        /// The column.
        column: String,
        /// Zero-based row of the first infinite value.
        row: usize,
    },
    /// A reference column has no value at all, so nothing can be imputed for it.
    #[error("reference column {0:?} has no value")]
    AllMissing(String),
    /// A table has no rows.
    #[error("the {0} has no rows")]
    Empty(&'static str),
    /// A table has too few rows for what is asked of it.
    #[error("the {which} has {rows} rows; {purpose} needs at least {need}")]
    TooFewRows {
        /// "reference", "analysis" or "window".
        which: &'static str,
        /// Rows it has.
        rows: usize,
        /// Rows needed.
        need: usize,
        /// What needs them.
        purpose: &'static str,
    },
    /// An option is out of its range.
    #[error("{field}: {reason}")]
    InvalidOption {
        /// The option, as its field is named.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The thresholds could not be computed from the reference chunks' values.
    #[error("thresholds: {0}")]
    Threshold(#[source] PerformanceError),
    /// A deserialised model is inconsistent (shapes that do not fit together).
    #[error("corrupt fitted model: {0}")]
    Corrupt(String),
    /// The classifier of a domain classifier could not be trained or could not predict (the
    /// trainer's message; its checks are run beforehand, so this is not expected).
    #[error("classifier: {0}")]
    Classifier(String),
}

/// Result alias for the multivariate module.
pub type Result<T, E = MultivariateError> = std::result::Result<T, E>;

/// A feature's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Numbers; NaN is missing.
    Numerical,
    /// Strings; `None` is missing.
    Categorical,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Numerical => "numerical",
            Kind::Categorical => "categorical",
        })
    }
}

/// A column's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Values<'a> {
    /// Numerical values, NaN for missing.
    Numerical(&'a [f64]),
    /// Categorical values, `None` for missing.
    Categorical(&'a [Option<&'a str>]),
}

impl<'a> Values<'a> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Values::Numerical(v) => v.len(),
            Values::Categorical(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind of the values.
    pub fn kind(&self) -> Kind {
        match self {
            Values::Numerical(_) => Kind::Numerical,
            Values::Categorical(_) => Kind::Categorical,
        }
    }

    fn slice(&self, rows: Range<usize>) -> Values<'a> {
        match *self {
            Values::Numerical(v) => Values::Numerical(&v[rows]),
            Values::Categorical(v) => Values::Categorical(&v[rows]),
        }
    }
}

/// A named column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column<'a> {
    /// The feature's name.
    pub name: &'a str,
    /// Its values.
    pub values: Values<'a>,
}

impl<'a> Column<'a> {
    /// A numerical column (NaN for missing).
    pub fn numerical(name: &'a str, values: &'a [f64]) -> Self {
        Column { name, values: Values::Numerical(values) }
    }

    /// A categorical column (`None` for missing).
    pub fn categorical(name: &'a str, values: &'a [Option<&'a str>]) -> Self {
        Column { name, values: Values::Categorical(values) }
    }
}

/// Borrowed feature columns of equal length: a reference, an analysis set or a window.
///
/// The reference's columns, in their order, are the model's features. Rows evaluated later
/// must hold columns of the same names and kinds; other columns are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table<'a> {
    columns: Vec<Column<'a>>,
    rows: usize,
}

impl<'a> Table<'a> {
    /// A table of `columns`; errors when two share a name or their lengths differ.
    pub fn new(columns: impl IntoIterator<Item = Column<'a>>) -> Result<Self> {
        let columns: Vec<Column<'a>> = columns.into_iter().collect();
        let rows = columns.first().map_or(0, |c| c.values.len());
        for (i, c) in columns.iter().enumerate() {
            if c.values.len() != rows {
                return Err(MultivariateError::LengthMismatch {
                    column: c.name.to_string(),
                    expected: rows,
                    got: c.values.len(),
                });
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(MultivariateError::DuplicateColumn(c.name.to_string()));
            }
        }
        Ok(Table { columns, rows })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns, in order.
    pub fn columns(&self) -> &[Column<'a>] {
        &self.columns
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column<'a>> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The rows `rows` of every column. Panics when the range is outside the table, as slicing
    /// does.
    pub fn slice(&self, rows: Range<usize>) -> Table<'a> {
        let columns = self.columns.iter().map(|c| Column { name: c.name, values: c.values.slice(rows.clone()) });
        Table { columns: columns.collect(), rows: rows.len() }
    }
}

/// How rows are cut into chunks: NannyML's `chunk_size` / `chunk_number` and its chunkers'
/// `incomplete`. The default is NannyML's `DefaultChunker`: ten chunks.
///
/// Example (JSON): `{"by": {"size": 5000}, "incomplete": "keep"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunking {
    /// `{"size": n}`: chunks of n rows (`SizeBasedChunker`); `{"number": n}`: chunks of
    /// rows / n rows, rounded down (`CountBasedChunker`, which then cuts by that size, so the
    /// leftover rows can make an extra chunk). Default `{"number": 10}`.
    pub by: ChunkBy,
    /// The rows left after the last full chunk. Default `"keep"` (NannyML's, and the only
    /// behaviour its `chunk_size` and `chunk_number` arguments give).
    #[serde(default)]
    pub incomplete: Incomplete,
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking { by: ChunkBy::Number(10), incomplete: Incomplete::Keep }
    }
}

/// What sets a chunk's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkBy {
    /// Rows per chunk.
    Size(usize),
    /// Number of full chunks.
    Number(usize),
}

/// What NannyML's chunkers do with the rows left after the last full chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Incomplete {
    /// They make a smaller chunk of their own.
    #[default]
    Keep,
    /// They join the last full chunk.
    Append,
    /// They are left out.
    Drop,
}

impl Chunking {
    /// Checks the sizes are positive.
    pub fn validate(&self) -> Result<()> {
        match self.by {
            ChunkBy::Size(0) => Err(invalid("chunking.by.size", "must be at least 1")),
            ChunkBy::Number(0) => Err(invalid("chunking.by.number", "must be at least 1")),
            _ => Ok(()),
        }
    }

    /// The row ranges of `rows` rows' chunks, in order, as NannyML's chunkers cut them
    /// (`nannyml/chunk.py`: `SizeBasedChunker._split`, `CountBasedChunker._split`). `which`
    /// names the table in errors.
    ///
    /// Errors, as NannyML's: no rows; fewer rows than `Number` chunks (a chunk size of 0);
    /// `Append` without a full chunk to append to.
    pub fn split(&self, rows: usize, which: &'static str) -> Result<Vec<Range<usize>>> {
        self.validate()?;
        if rows == 0 {
            return Err(MultivariateError::Empty(which));
        }
        let size = match self.by {
            ChunkBy::Size(size) => size,
            ChunkBy::Number(number) if rows < number => {
                return Err(MultivariateError::TooFewRows { which, rows, need: number, purpose: "chunking" });
            }
            ChunkBy::Number(number) => rows / number,
        };
        let full = rows / size;
        let mut chunks: Vec<Range<usize>> = (0..full).map(|i| i * size..(i + 1) * size).collect();
        if rows % size != 0 {
            match self.incomplete {
                Incomplete::Keep => chunks.push(full * size..rows),
                Incomplete::Append => match chunks.last_mut() {
                    Some(last) => last.end = rows,
                    None => {
                        return Err(MultivariateError::TooFewRows {
                            which,
                            rows,
                            need: size,
                            purpose: "appending the incomplete chunk",
                        });
                    }
                },
                Incomplete::Drop => {}
            }
        }
        if chunks.is_empty() {
            return Err(MultivariateError::TooFewRows { which, rows, need: size, purpose: "one full chunk" });
        }
        Ok(chunks)
    }
}

/// How the alert band is set: NannyML's `Threshold` classes. Default: standard deviation with
/// multipliers 3 and 3.
///
/// Example (JSON): `{"type": "standard_deviation", "std_lower_multiplier": 3,
/// "std_upper_multiplier": 3}` or `{"type": "constant", "lower": null, "upper": 1.5}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Threshold {
    /// `StandardDeviationThreshold`: mean ∓ multiplier · std of the reference chunks' values
    /// (numpy's `nanmean`, `nanstd` with ddof 0); a `null` multiplier leaves that side open.
    StandardDeviation {
        /// Multiplier of the lower bound. Default 3.
        std_lower_multiplier: Option<f64>,
        /// Multiplier of the upper bound. Default 3.
        std_upper_multiplier: Option<f64>,
    },
    /// `ConstantThreshold`: fixed bounds; `null` leaves that side open.
    Constant {
        /// The lower bound.
        lower: Option<f64>,
        /// The upper bound.
        upper: Option<f64>,
    },
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::StandardDeviation { std_lower_multiplier: Some(3.0), std_upper_multiplier: Some(3.0) }
    }
}

impl Threshold {
    /// NannyML's checks: finite, non-negative multipliers; constant lower below upper.
    pub fn validate(&self) -> Result<()> {
        let finite = |field, v: Option<f64>| match v {
            Some(x) if !x.is_finite() => Err(invalid(field, format!("must be finite, got {x}"))),
            _ => Ok(()),
        };
        match *self {
            Threshold::StandardDeviation { std_lower_multiplier: lo, std_upper_multiplier: up } => {
                finite("threshold.std_lower_multiplier", lo)?;
                finite("threshold.std_upper_multiplier", up)?;
                for (field, m) in [("threshold.std_lower_multiplier", lo), ("threshold.std_upper_multiplier", up)] {
                    if let Some(m) = m.filter(|m| *m < 0.0) {
                        return Err(invalid(field, format!("must not be negative, got {m}")));
                    }
                }
            }
            Threshold::Constant { lower, upper } => {
                finite("threshold.lower", lower)?;
                finite("threshold.upper", upper)?;
                if let (Some(l), Some(u)) = (lower, upper)
                    && l >= u
                {
                    return Err(invalid("threshold.lower", format!("{l} must be below upper {u}")));
                }
            }
        }
        Ok(())
    }

    /// The band for reference chunk values `values`, as NannyML's `calculate_threshold_values`
    /// with `override_using_none=True`: a lower bound at or below `lower_limit` becomes `None`.
    pub fn bounds(&self, values: &[f64], lower_limit: Option<f64>) -> Result<Bounds> {
        self.validate()?;
        let (lower, upper) = match *self {
            Threshold::StandardDeviation { std_lower_multiplier, std_upper_multiplier } => {
                let k = StdMultipliers { lower: std_lower_multiplier, upper: std_upper_multiplier };
                let t = crate::performance::Threshold::from_reference(values, k, ValueRange::UNBOUNDED)
                    .map_err(MultivariateError::Threshold)?;
                (t.lower, t.upper)
            }
            Threshold::Constant { lower, upper } => (lower, upper),
        };
        let lower = lower.filter(|l| lower_limit.is_none_or(|limit| *l > limit));
        Ok(Bounds { lower, upper })
    }
}

/// An alert band; `None` leaves a side open.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Values at or below this alert.
    pub lower: Option<f64>,
    /// Values at or above this alert.
    pub upper: Option<f64>,
}

impl Bounds {
    /// NannyML's alert: `not (lower < value < upper)`, so a value equal to a bound alerts, and
    /// so does NaN.
    pub fn alert(&self, value: f64) -> bool {
        let lower = self.lower.unwrap_or(f64::NEG_INFINITY);
        let upper = self.upper.unwrap_or(f64::INFINITY);
        !(lower < value && value < upper)
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> MultivariateError {
    MultivariateError::InvalidOption { field, reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(c: Chunking, rows: usize) -> Vec<(usize, usize)> {
        c.split(rows, "reference").unwrap().into_iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn chunks_are_cut_as_nannyml_cuts_them() {
        let size = |n, incomplete| Chunking { by: ChunkBy::Size(n), incomplete };
        assert_eq!(ranges(size(4, Incomplete::Keep), 10), [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(ranges(size(4, Incomplete::Append), 10), [(0, 4), (4, 10)]);
        assert_eq!(ranges(size(4, Incomplete::Drop), 10), [(0, 4), (4, 8)]);
        assert_eq!(ranges(size(20, Incomplete::Keep), 10), [(0, 10)]);
        assert!(size(20, Incomplete::Append).split(10, "reference").is_err());
        // DefaultChunker: 10 chunks of 105 / 10 = 10 rows, and the 5 left over.
        let d = ranges(Chunking::default(), 105);
        assert_eq!((d.len(), d[10]), (11, (100, 105)));
        assert_eq!(
            Chunking::default().split(9, "analysis"),
            Err(MultivariateError::TooFewRows { which: "analysis", rows: 9, need: 10, purpose: "chunking" })
        );
        assert_eq!(Chunking::default().split(0, "analysis"), Err(MultivariateError::Empty("analysis")));
    }

    #[test]
    fn bands_drop_a_lower_bound_at_zero_and_alert_on_equality() {
        // mean 1, population std √(2/3): 1 − 3·0.816 < 0 drops the lower bound.
        let b = Threshold::default().bounds(&[0.0, 1.0, 2.0], Some(0.0)).unwrap();
        assert_eq!(b.lower, None);
        assert!((b.upper.unwrap() - (1.0 + 3.0 * (2.0f64 / 3.0).sqrt())).abs() < 1e-15);
        let c = Threshold::Constant { lower: Some(0.5), upper: Some(2.0) }.bounds(&[], Some(0.0)).unwrap();
        assert!(c.alert(0.5) && c.alert(2.0) && c.alert(f64::NAN) && !c.alert(1.0));
        assert!(Threshold::Constant { lower: Some(2.0), upper: Some(1.0) }.validate().is_err());
        let negative = Threshold::StandardDeviation { std_lower_multiplier: Some(-1.0), std_upper_multiplier: None };
        assert!(negative.validate().is_err());
    }

    #[test]
    fn tables_check_their_columns() {
        let (a, b) = ([1.0, 2.0], [Some("x")]);
        assert!(matches!(
            Table::new([Column::numerical("a", &a), Column::categorical("b", &b)]),
            Err(MultivariateError::LengthMismatch { .. })
        ));
        assert!(matches!(
            Table::new([Column::numerical("a", &a), Column::numerical("a", &a)]),
            Err(MultivariateError::DuplicateColumn(_))
        ));
        let t = Table::new([Column::numerical("a", &a)]).unwrap();
        assert_eq!(t.slice(1..2).column("a").map(|c| c.values), Some(Values::Numerical(&[2.0])));
    }

    #[test]
    fn options_read_from_json() {
        let c: Chunking = serde_json::from_str(r#"{"by": {"size": 5000}}"#).unwrap();
        assert_eq!(c, Chunking { by: ChunkBy::Size(5000), incomplete: Incomplete::Keep });
        let t: Threshold = serde_json::from_str(r#"{"type": "constant", "lower": null, "upper": 1.5}"#).unwrap();
        assert_eq!(t, Threshold::Constant { lower: None, upper: Some(1.5) });
        assert!(serde_json::from_str::<Chunking>(r#"{"by": {"size": 5}, "extra": 1}"#).is_err());
    }
}

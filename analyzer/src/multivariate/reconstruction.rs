//! NannyML 0.13.1's data reconstruction drift (`DataReconstructionDriftCalculator`,
//! `nannyml/drift/multivariate/data_reconstruction/calculator.py`), step for step, with
//! scikit-learn 1.9.1 and category_encoders 2.11.2 under it:
//!
//! 1. Imputation (`SimpleImputer`, `sklearn/impute/_base.py`): a numerical column's missing
//!    values become the mean of its present ones, summed as numpy sums a column (pairwise,
//!    missing values counted as 0); a categorical column's become its most frequent value, the
//!    smallest (by code point) on ties (`_most_frequent`). A column without any value is
//!    refused (scikit-learn drops it and NannyML then fails).
//! 2. Count encoding (`CountEncoder(normalize=True)`, `category_encoders/count.py`): a category
//!    becomes count / rows of the imputed reference; a category the reference never saw
//!    becomes 0 (`handle_unknown="value"`).
//! 3. Standard scaling (`StandardScaler`, `_incremental_mean_and_var`): mean, and the
//!    population variance by the corrected two-pass formula; a column whose variance is within
//!    rounding of 0 (`_is_constant_feature`) is scaled by 1.
//! 4. `PCA(n_components=0.65, random_state=16)` on the scaled reference: `covariance_eigh`
//!    when n ≥ 10·d (d ≤ 1000), else `full` (a fraction never takes the randomized solver, so
//!    `random_state` is unused); signs by `svd_flip`; the kept components are the fewest whose
//!    cumulated explained-variance ratios exceed the fraction (`searchsorted(side="right") + 1`).
//! 5. A row's error is ‖x − inverse_transform(transform(x))‖₂ of its scaled values x; a
//!    chunk's value is the mean error of its rows, its sampling error their standard deviation
//!    (ddof 1) over √rows, NaN for a single row.
//! 6. Thresholds from the reference chunks' values ([`Threshold`]), the lower one dropped at or
//!    below 0; alerts when a value is not strictly inside ([`Bounds::alert`]).
//!
//! Agreement with NannyML, checked by `tests/reconstruction_golden.rs` on fixtures that
//! `analyzer/golden/multivariate.py` generates by running NannyML: see that file's tolerances.
//! The principal axes come from Jacobi rotations ([`linalg`]) instead of LAPACK, and the
//! products from plain loops instead of BLAS: the same numbers up to rounding.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize};

use super::{Bounds, Chunking, Kind, MultivariateError, Result, Table, Threshold, Values, invalid};
use crate::stats::embedding_drift::linalg::{self, Matrix};
use crate::stats::embedding_drift::pca;
use crate::stats::{np_sum, np_sum_by};

/// NannyML's `lower_threshold_value_limit`: an error is never negative, so a lower threshold at
/// or below 0 is no threshold.
const LOWER_LIMIT: f64 = 0.0;

/// NannyML's `SAMPLING_ERROR_RANGE`: confidence boundaries lie this many sampling errors out.
const SAMPLING_ERROR_RANGE: f64 = 3.0;

/// Options of [`Reconstruction::fit`], NannyML's defaults when absent.
///
/// Example (JSON): `{"n_components": 0.65, "chunking": {"by": {"size": 5000}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconstructionOptions {
    /// The share of the scaled reference's variance the kept components must explain (more
    /// than), strictly between 0 and 1: NannyML's `n_components`. Default 0.65.
    pub n_components: f64,
    /// How the reference (and an analysis set given to [`Reconstruction::chunks`]) is cut into
    /// chunks. Default: ten chunks.
    pub chunking: Chunking,
    /// How the alert band is set from the reference chunks. Default: mean ± 3 std.
    pub threshold: Threshold,
}

impl Default for ReconstructionOptions {
    fn default() -> Self {
        ReconstructionOptions { n_components: 0.65, chunking: Chunking::default(), threshold: Threshold::default() }
    }
}

impl ReconstructionOptions {
    /// Checks every option's range; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.n_components > 0.0 && self.n_components < 1.0) {
            return Err(invalid("n_components", format!("must be between 0 and 1, got {}", self.n_components)));
        }
        self.chunking.validate()?;
        self.threshold.validate()
    }
}

/// How a feature becomes a number before scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Encoding {
    /// A number, missing values replaced by `fill` (the reference's mean).
    Numerical {
        /// The imputed value.
        fill: f64,
    },
    /// A category's share of the reference rows, missing values replaced by `fill` (the
    /// reference's most frequent category) first; unseen categories 0.
    Categorical {
        /// The imputed category.
        fill: String,
        /// Each reference category's share of the rows, after imputation.
        shares: BTreeMap<String, f64>,
    },
}

/// A fitted feature: its encoding and scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// The column's name.
    pub name: String,
    /// Imputation and encoding.
    pub encoding: Encoding,
    /// The encoded reference's mean (`StandardScaler.mean_`).
    pub mean: f64,
    /// The encoded reference's population standard deviation, or 1 for a (nearly) constant
    /// column (`StandardScaler.scale_`).
    pub scale: f64,
}

impl Feature {
    /// The feature's kind.
    pub fn kind(&self) -> Kind {
        match self.encoding {
            Encoding::Numerical { .. } => Kind::Numerical,
            Encoding::Categorical { .. } => Kind::Categorical,
        }
    }

    /// Row `row` of `values` imputed, encoded and scaled. `values` has this feature's kind.
    fn scaled(&self, values: Values<'_>, row: usize) -> f64 {
        let encoded = match (&self.encoding, values) {
            (Encoding::Numerical { fill }, Values::Numerical(v)) => {
                if v[row].is_nan() {
                    *fill
                } else {
                    v[row]
                }
            }
            (Encoding::Categorical { fill, shares }, Values::Categorical(v)) => {
                shares.get(v[row].unwrap_or(fill.as_str())).copied().unwrap_or(0.0)
            }
            _ => f64::NAN,
        };
        (encoded - self.mean) / self.scale
    }
}

/// The solver scikit-learn's `PCA` used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// Eigenvectors of the covariance matrix (n ≥ 10·d, d ≤ 1000).
    CovarianceEigh,
    /// SVD of the centred data.
    Full,
}

impl Solver {
    /// scikit-learn's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Solver::CovarianceEigh => "covariance_eigh",
            Solver::Full => "full",
        }
    }
}

/// A chunk's (or a window's) result, as a row of NannyML's result frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunk {
    /// The chunk's first row in the table it was cut from (NannyML's `start_index`; 0 for a
    /// window).
    pub start: usize,
    /// Its number of rows (`end_index` is `start + rows − 1`).
    pub rows: usize,
    /// The mean reconstruction error of its rows.
    pub value: f64,
    /// The standard deviation (ddof 1) of its rows' errors over √rows; NaN for one row.
    #[serde(with = "nan_as_null")]
    pub sampling_error: f64,
    /// Whether the value lies outside the reference's band ([`Bounds::alert`]).
    pub alert: bool,
}

impl Chunk {
    /// NannyML's `upper_confidence_boundary`: value + 3 sampling errors.
    pub fn upper_confidence_boundary(&self) -> f64 {
        self.value + SAMPLING_ERROR_RANGE * self.sampling_error
    }

    /// NannyML's `lower_confidence_boundary`: value − 3 sampling errors, at least 0 (NaN stays
    /// NaN, as `np.maximum`).
    pub fn lower_confidence_boundary(&self) -> f64 {
        let b = self.value - SAMPLING_ERROR_RANGE * self.sampling_error;
        if b.is_nan() { b } else { b.max(LOWER_LIMIT) }
    }
}

/// What a fitted reconstruction holds; [`Reconstruction`] checks it when deserialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    options: ReconstructionOptions,
    features: Vec<Feature>,
    solver: Solver,
    /// Every component's explained variance, largest first (min(n, d) of them).
    explained_variance: Vec<f64>,
    /// Column means of the scaled reference (`PCA.mean_`, zero up to rounding).
    mean: Vec<f64>,
    /// Number of components kept.
    n_components: usize,
    /// The kept components, `n_components × features`, row-major.
    components: Vec<f64>,
    /// The reference chunks' results.
    reference: Vec<Chunk>,
    /// The alert band.
    bounds: Bounds,
}

/// A data reconstruction model fitted on a reference: see the [module](self) documentation.
///
/// Serialises to JSON (or any serde format) so it can be cached with its reference;
/// deserialising checks that the shapes fit together. (serde_json, built without
/// `float_roundtrip`, reads a float back within an ulp of what it wrote: a cached model's
/// numbers can move in their last bit.)
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Reconstruction {
    model: Model,
}

impl<'de> Deserialize<'de> for Reconstruction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let model = Model::deserialize(deserializer)?;
        model.check().map_err(serde::de::Error::custom)?;
        Ok(Reconstruction { model })
    }
}

impl Reconstruction {
    /// Fits NannyML's calculator on `reference` (its columns, in order, are the features) and
    /// computes the reference chunks' values and the alert band.
    ///
    /// Errors: an invalid option; no feature; a reference with no rows, fewer than 2 rows
    /// (the PCA divides by n − 1) or too few for the chunking; an infinite value; a column
    /// with no value.
    pub fn fit(reference: &Table<'_>, options: &ReconstructionOptions) -> Result<Self> {
        options.validate()?;
        if reference.columns().is_empty() {
            return Err(MultivariateError::NoFeatures);
        }
        let n = reference.rows();
        let chunks = options.chunking.split(n, "reference")?;
        if n < 2 {
            return Err(MultivariateError::TooFewRows { which: "reference", rows: n, need: 2, purpose: "the PCA" });
        }
        let mut features = Vec::with_capacity(reference.columns().len());
        let mut scaled = Vec::with_capacity(reference.columns().len());
        for column in reference.columns() {
            let (encoding, encoded) = match column.values {
                Values::Numerical(v) => impute_mean(column.name, v)?,
                Values::Categorical(v) => count_encode(column.name, v)?,
            };
            let (mean, scale) = standard_scaler(&encoded);
            scaled.push(encoded.iter().map(|x| (x - mean) / scale).collect::<Vec<f64>>());
            features.push(Feature { name: column.name.to_string(), encoding, mean, scale });
        }
        let axes = principal_axes(&scaled, n);
        let k = kept_components(&axes.explained_variance, options.n_components);
        let d = features.len();
        let mut model = Model {
            options: options.clone(),
            features,
            solver: axes.solver,
            explained_variance: axes.explained_variance,
            mean: axes.mean,
            n_components: k,
            components: axes.components.data[..k * d].to_vec(),
            reference: Vec::new(),
            bounds: Bounds::default(),
        };
        let mut reference_chunks = model.measure(reference, &chunks, "reference")?;
        let values: Vec<f64> = reference_chunks.iter().map(|c| c.value).collect();
        model.bounds = options.threshold.bounds(&values, Some(LOWER_LIMIT))?;
        for c in &mut reference_chunks {
            c.alert = model.bounds.alert(c.value);
        }
        model.reference = reference_chunks;
        Ok(Reconstruction { model })
    }

    /// The mean reconstruction error of `rows` (a window: any number of rows, at least one).
    pub fn error(&self, rows: &Table<'_>) -> Result<f64> {
        Ok(self.window(rows)?.value)
    }

    /// `rows` as one chunk: mean error, sampling error and alert.
    pub fn window(&self, rows: &Table<'_>) -> Result<Chunk> {
        if rows.rows() == 0 {
            return Err(MultivariateError::Empty("window"));
        }
        let mut chunks = self.model.measure(rows, &[0..rows.rows()], "window")?;
        let mut chunk = chunks.remove(0);
        chunk.alert = self.alert(chunk.value);
        Ok(chunk)
    }

    /// `analysis` cut with the fitted chunking and measured chunk by chunk, as NannyML's
    /// `calculate` does.
    pub fn chunks(&self, analysis: &Table<'_>) -> Result<Vec<Chunk>> {
        let ranges = self.model.options.chunking.split(analysis.rows(), "analysis")?;
        let mut chunks = self.model.measure(analysis, &ranges, "analysis")?;
        for c in &mut chunks {
            c.alert = self.alert(c.value);
        }
        Ok(chunks)
    }

    /// Whether `value` alerts against the reference's band.
    pub fn alert(&self, value: f64) -> bool {
        self.model.bounds.alert(value)
    }

    /// The alert band fitted on the reference chunks.
    pub fn bounds(&self) -> Bounds {
        self.model.bounds
    }

    /// The reference chunks' results, with their alerts.
    pub fn reference_chunks(&self) -> &[Chunk] {
        &self.model.reference
    }

    /// The options it was fitted with.
    pub fn options(&self) -> &ReconstructionOptions {
        &self.model.options
    }

    /// The features, in the reference's column order.
    pub fn features(&self) -> &[Feature] {
        &self.model.features
    }

    /// The PCA solver scikit-learn would use on this reference.
    pub fn solver(&self) -> Solver {
        self.model.solver
    }

    /// Number of principal components kept.
    pub fn n_components(&self) -> usize {
        self.model.n_components
    }

    /// Every component's share of the scaled reference's variance, largest first
    /// (`PCA.explained_variance_ratio_` before truncation; NaN when the reference is constant).
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        let total = np_sum(&self.model.explained_variance);
        self.model.explained_variance.iter().map(|v| v / total).collect()
    }
}

impl Model {
    /// Consistency of a deserialised model.
    fn check(&self) -> Result<()> {
        let corrupt = |what: String| Err(MultivariateError::Corrupt(what));
        self.options.validate()?;
        let d = self.features.len();
        if d == 0 {
            return corrupt("no features".into());
        }
        if self.mean.len() != d {
            return corrupt(format!("{} means for {d} features", self.mean.len()));
        }
        if self.n_components == 0 || self.components.len() != self.n_components * d {
            return corrupt(format!("{} component values for {} × {d}", self.components.len(), self.n_components));
        }
        for f in &self.features {
            if !(f.scale.is_finite() && f.scale > 0.0 && f.mean.is_finite()) {
                return corrupt(format!("feature {:?} has scale {} and mean {}", f.name, f.scale, f.mean));
            }
            if let Encoding::Categorical { fill, shares } = &f.encoding
                && !shares.contains_key(fill)
            {
                return corrupt(format!("feature {:?} imputes {fill:?}, which has no share", f.name));
            }
        }
        Ok(())
    }

    /// The chunks `ranges` of `rows`, without alerts: each row imputed, encoded, scaled,
    /// projected and reconstructed.
    fn measure(&self, rows: &Table<'_>, ranges: &[Range<usize>], which: &'static str) -> Result<Vec<Chunk>> {
        let columns = self.bind(rows)?;
        let (d, k) = (self.features.len(), self.n_components);
        let components = &self.components;
        // scikit-learn's transform centres after projecting: X·Vᵀ − μ·Vᵀ.
        let offset: Vec<f64> = (0..k).map(|c| dot(&self.mean, &components[c * d..(c + 1) * d])).collect();
        let (mut x, mut t, mut diff) = (vec![0.0; d], vec![0.0; k], vec![0.0; d]);
        let mut errors = Vec::new();
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            if range.is_empty() {
                return Err(MultivariateError::Empty(which));
            }
            errors.clear();
            for row in range.clone() {
                for ((xj, f), values) in x.iter_mut().zip(&self.features).zip(&columns) {
                    *xj = f.scaled(*values, row);
                }
                for (c, tc) in t.iter_mut().enumerate() {
                    *tc = dot(&x, &components[c * d..(c + 1) * d]) - offset[c];
                }
                // inverse_transform: T·V + μ.
                for (j, (dj, (xj, mj))) in diff.iter_mut().zip(x.iter().zip(&self.mean)).enumerate() {
                    let mut r = 0.0;
                    for (c, tc) in t.iter().enumerate() {
                        r += tc * components[c * d + j];
                    }
                    *dj = xj - (r + mj);
                }
                errors.push(np_sum_by(d, |j| diff[j] * diff[j]).sqrt());
            }
            out.push(summarize(&errors, range.start));
        }
        Ok(out)
    }

    /// Each feature's column in `rows`, checked for kind and infinite values.
    fn bind<'a>(&self, rows: &Table<'a>) -> Result<Vec<Values<'a>>> {
        self.features
            .iter()
            .map(|f| {
                let column = rows.column(&f.name).ok_or_else(|| MultivariateError::MissingColumn(f.name.clone()))?;
                if column.values.kind() != f.kind() {
                    return Err(MultivariateError::KindMismatch {
                        column: f.name.clone(),
                        expected: f.kind(),
                        got: column.values.kind(),
                    });
                }
                if let Values::Numerical(v) = column.values {
                    finite(&f.name, v)?;
                }
                Ok(column.values)
            })
            .collect()
    }
}

/// A chunk from its rows' errors: `np.mean` and `np.std(ddof=1) / sqrt(rows)`.
fn summarize(errors: &[f64], start: usize) -> Chunk {
    let m = errors.len() as f64;
    let value = np_sum(errors) / m;
    let squares = np_sum_by(errors.len(), |i| {
        let e = errors[i] - value;
        e * e
    });
    let std = (squares / (m - 1.0)).sqrt();
    Chunk { start, rows: errors.len(), value, sampling_error: std / m.sqrt(), alert: false }
}

/// `SimpleImputer(strategy="mean")`: the mean of the present values (numpy's pairwise sum of
/// the column with missing values as 0, over their count) and the imputed column.
fn impute_mean(name: &str, values: &[f64]) -> Result<(Encoding, Vec<f64>)> {
    finite(name, values)?;
    let count = values.iter().filter(|v| !v.is_nan()).count();
    if count == 0 {
        return Err(MultivariateError::AllMissing(name.to_string()));
    }
    let fill = np_sum_by(values.len(), |i| if values[i].is_nan() { 0.0 } else { values[i] }) / count as f64;
    let imputed = values.iter().map(|&v| if v.is_nan() { fill } else { v }).collect();
    Ok((Encoding::Numerical { fill }, imputed))
}

/// `SimpleImputer(strategy="most_frequent")` then `CountEncoder(normalize=True)`: the most
/// frequent category (the smallest of the tied ones, as Python's `min` on strings) fills the
/// missing values, then each category becomes count / rows.
fn count_encode(name: &str, values: &[Option<&str>]) -> Result<(Encoding, Vec<f64>)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values.iter().flatten() {
        *counts.entry(v).or_default() += 1;
    }
    let Some(&most) = counts.values().max() else {
        return Err(MultivariateError::AllMissing(name.to_string()));
    };
    // BTreeMap iterates in str order, which is code point order like Python's.
    let fill = counts.iter().find(|(_, c)| **c == most).map(|(s, _)| *s).unwrap_or_default();
    let missing = values.iter().filter(|v| v.is_none()).count();
    *counts.entry(fill).or_default() += missing;
    let rows = values.len() as f64;
    let shares: BTreeMap<String, f64> = counts.iter().map(|(s, c)| (s.to_string(), *c as f64 / rows)).collect();
    let encoded = values.iter().map(|v| counts[v.unwrap_or(fill)] as f64 / rows).collect();
    Ok((Encoding::Categorical { fill: fill.to_string(), shares }, encoded))
}

/// `StandardScaler().fit(column)`: `(mean_, scale_)`. The variance is
/// `_incremental_mean_and_var`'s corrected two-pass one, Σ(x − x̄)² − (Σ(x − x̄))²/n over n;
/// `_is_constant_feature` (var ≤ n·ε·var + (n·x̄·ε)²) scales by 1 instead.
fn standard_scaler(column: &[f64]) -> (f64, f64) {
    let n = column.len() as f64;
    let mean = np_sum(column) / n;
    let correction = np_sum_by(column.len(), |i| column[i] - mean);
    let squares = np_sum_by(column.len(), |i| {
        let t = column[i] - mean;
        t * t
    });
    let var = (squares - correction * correction / n) / n;
    let eps = f64::EPSILON;
    let bound = n * eps * var + (n * mean * eps) * (n * mean * eps);
    (mean, if var <= bound { 1.0 } else { var.sqrt() })
}

/// A fitted PCA before truncation.
struct Axes {
    solver: Solver,
    mean: Vec<f64>,
    explained_variance: Vec<f64>,
    /// One component per row, largest variance first, signs flipped as `svd_flip`.
    components: Matrix,
}

/// `PCA._fit_full` on the scaled columns (`sklearn/decomposition/_pca.py`).
fn principal_axes(columns: &[Vec<f64>], n: usize) -> Axes {
    let d = columns.len();
    let nf = n as f64;
    let mean: Vec<f64> = columns.iter().map(|c| np_sum(c) / nf).collect();
    // A fractional n_components fails scikit-learn's `1 <= n_components` test for the
    // randomized solver, which is what `for_shape` answers for k = 0.
    let solver = match pca::Solver::for_shape(n, d, 0) {
        pca::Solver::CovarianceEigh => Solver::CovarianceEigh,
        _ => Solver::Full,
    };
    let (explained_variance, mut components) = match solver {
        Solver::CovarianceEigh => {
            // C = XᵀX − n·μμᵀ, over n − 1.
            let mut c = Matrix::zeros(d, d);
            for (i, a) in columns.iter().enumerate() {
                for (j, b) in columns.iter().enumerate().skip(i) {
                    let v = np_sum_by(n, |r| a[r] * b[r]);
                    c.data[i * d + j] = v;
                    c.data[j * d + i] = v;
                }
            }
            for (i, mi) in mean.iter().enumerate() {
                for (j, mj) in mean.iter().enumerate() {
                    let cij = &mut c.data[i * d + j];
                    *cij -= nf * mi * mj;
                    *cij /= nf - 1.0;
                }
            }
            let (values, vectors) = linalg::symmetric_eigen(&c);
            // LAPACK's eigh returns ascending eigenvalues and scikit-learn reverses them, so
            // equal eigenvalues (a constant reference) come in reverse index order.
            let mut order: Vec<usize> = (0..d).collect();
            order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
            order.reverse();
            let mut components = Matrix::zeros(d, d);
            for (r, &j) in order.iter().enumerate() {
                for i in 0..d {
                    components.data[r * d + i] = vectors.data[i * d + j];
                }
            }
            let variance = order.iter().map(|&j| if values[j] < 0.0 { 0.0 } else { values[j] }).collect();
            (variance, components)
        }
        Solver::Full => {
            let mut centred = Matrix::zeros(n, d);
            for (j, (column, m)) in columns.iter().zip(&mean).enumerate() {
                for (i, v) in column.iter().enumerate() {
                    centred.data[i * d + j] = v - m;
                }
            }
            let svd = linalg::thin_svd(&centred);
            let variance = svd.s.iter().map(|s| s * s / (nf - 1.0)).collect();
            (variance, svd.vt)
        }
    };
    pca::flip_signs(&mut components, None);
    Axes { solver, mean, explained_variance, components }
}

/// `searchsorted(cumsum(ratios), fraction, side="right") + 1`: one more than the components
/// whose cumulated ratio is at most `fraction` (NaN ratios, of a constant reference, count as
/// above it), at most all of them.
fn kept_components(explained_variance: &[f64], fraction: f64) -> usize {
    let total = np_sum(explained_variance);
    let mut cumulated = 0.0;
    let mut below = 0;
    for v in explained_variance {
        cumulated += v / total;
        if cumulated <= fraction {
            below += 1;
        } else {
            break;
        }
    }
    (below + 1).min(explained_variance.len())
}

/// Errors on the first infinite value.
fn finite(name: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| v.is_infinite()) {
        Some(row) => Err(MultivariateError::Infinite { column: name.to_string(), row }),
        None => Ok(()),
    }
}

/// Σ aᵢ·bᵢ in index order.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |s, (x, y)| s + x * y)
}

/// NaN written as `null` and read back, for values that are NaN by definition (a one-row
/// chunk's sampling error) in formats without NaN such as JSON.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() { s.serialize_none() } else { s.serialize_some(v) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChunkBy, Column};
    use super::*;

    /// Three correlated numerical features and a categorical one, 60 rows.
    fn sample() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<Option<&'static str>>) {
        let mut state = 11u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let (mut a, mut b, mut c, mut s) = (vec![], vec![], vec![], vec![]);
        for i in 0..60 {
            let x = next();
            a.push(x);
            b.push(0.8 * x + 0.2 * next());
            c.push(next());
            s.push(Some(["red", "green", "blue", "red"][i % 4]));
        }
        (a, b, c, s)
    }

    #[test]
    fn imputation_follows_scikit_learn() {
        let (enc, col) = impute_mean("x", &[1.0, f64::NAN, 2.0, 6.0]).unwrap();
        assert_eq!((enc, col), (Encoding::Numerical { fill: 3.0 }, vec![1.0, 3.0, 2.0, 6.0]));
        // "z" and "é" tie; Python's min picks "z" (U+007A < U+00E9).
        let (enc, col) = count_encode("c", &[Some("é"), Some("z"), None, Some("é"), Some("z"), Some("a")]).unwrap();
        let Encoding::Categorical { fill, shares } = enc else { panic!("categorical") };
        assert_eq!(fill, "z");
        assert_eq!(shares["z"], 0.5);
        assert_eq!(col, vec![2.0 / 6.0, 0.5, 0.5, 2.0 / 6.0, 0.5, 1.0 / 6.0]);
        assert_eq!(impute_mean("x", &[f64::NAN]), Err(MultivariateError::AllMissing("x".into())));
        assert!(matches!(impute_mean("x", &[f64::INFINITY]), Err(MultivariateError::Infinite { row: 0, .. })));
    }

    #[test]
    fn scaler_uses_population_std_and_scales_constants_by_one() {
        // [1, 2, 3, 4]: mean 2.5, population variance 1.25.
        assert_eq!(standard_scaler(&[1.0, 2.0, 3.0, 4.0]), (2.5, 1.25f64.sqrt()));
        assert_eq!(standard_scaler(&[4.25; 5]), (4.25, 1.0));
        let near: Vec<f64> = (0..50).map(|i| 1e8 + f64::from(i % 2) * 1e-8).collect();
        assert_eq!(standard_scaler(&near).1, 1.0);
    }

    #[test]
    fn components_kept_exceed_the_fraction() {
        assert_eq!(kept_components(&[5.0, 3.0, 2.0], 0.65), 2);
        assert_eq!(kept_components(&[5.0, 3.0, 2.0], 0.5), 2);
        assert_eq!(kept_components(&[5.0, 3.0, 2.0], 0.49), 1);
        assert_eq!(kept_components(&[0.0, 0.0], 0.65), 1);
    }

    #[test]
    fn reconstructs_the_reference_and_flags_a_broken_correlation() {
        let (a, b, c, s) = sample();
        let reference = Table::new([
            Column::numerical("a", &a),
            Column::numerical("b", &b),
            Column::numerical("c", &c),
            Column::categorical("s", &s),
        ])
        .unwrap();
        let model = Reconstruction::fit(&reference, &ReconstructionOptions::default()).unwrap();
        assert_eq!(model.solver(), Solver::CovarianceEigh);
        assert_eq!(model.reference_chunks().len(), 10);
        assert!(model.reference_chunks().iter().all(|c| !c.alert && c.rows == 6));
        let ratios = model.explained_variance_ratio();
        assert!((ratios.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Same marginals, correlation of a and b reversed.
        let flipped: Vec<f64> = b.iter().map(|v| -v).collect();
        let analysis = Table::new([
            Column::numerical("a", &a),
            Column::numerical("b", &flipped),
            Column::numerical("c", &c),
            Column::categorical("s", &s),
        ])
        .unwrap();
        let same = model.error(&reference).unwrap();
        let drifted = model.window(&analysis).unwrap();
        assert!(drifted.value > 2.0 * same, "{} vs {same}", drifted.value);
        assert!(drifted.alert);
        // One row: no sampling error.
        let one = model.window(&reference.slice(3..4)).unwrap();
        assert!(one.sampling_error.is_nan() && one.upper_confidence_boundary().is_nan());
    }

    #[test]
    fn refuses_what_nannyml_refuses() {
        let (a, b, _, s) = sample();
        let opts = ReconstructionOptions::default();
        assert_eq!(Reconstruction::fit(&Table::default(), &opts), Err(MultivariateError::NoFeatures));
        let reference = Table::new([Column::numerical("a", &a), Column::categorical("s", &s)]).unwrap();
        let one_chunk = ReconstructionOptions {
            chunking: Chunking { by: ChunkBy::Size(5), ..Chunking::default() },
            ..ReconstructionOptions::default()
        };
        assert!(matches!(
            Reconstruction::fit(&reference.slice(0..1), &one_chunk),
            Err(MultivariateError::TooFewRows { need: 2, .. })
        ));
        let bad = ReconstructionOptions { n_components: 1.0, ..ReconstructionOptions::default() };
        assert!(matches!(Reconstruction::fit(&reference, &bad), Err(MultivariateError::InvalidOption { .. })));
        let model = Reconstruction::fit(&reference, &opts).unwrap();
        let missing = Table::new([Column::numerical("a", &a)]).unwrap();
        assert_eq!(model.error(&missing), Err(MultivariateError::MissingColumn("s".into())));
        let swapped = Table::new([Column::numerical("a", &a), Column::numerical("s", &b)]).unwrap();
        assert!(matches!(model.error(&swapped), Err(MultivariateError::KindMismatch { .. })));
        let empty = Table::new([Column::numerical("a", &[]), Column::categorical("s", &[])]).unwrap();
        assert_eq!(model.error(&empty), Err(MultivariateError::Empty("window")));
    }

    #[test]
    fn survives_a_json_round_trip_and_refuses_a_corrupt_one() {
        let (a, b, _, s) = sample();
        let reference =
            Table::new([Column::numerical("a", &a), Column::numerical("b", &b), Column::categorical("s", &s)]).unwrap();
        // 60 rows in chunks of 59: the second chunk has one row, and a NaN sampling error.
        let chunking = Chunking { by: ChunkBy::Size(59), ..Chunking::default() };
        let model = Reconstruction::fit(&reference, &ReconstructionOptions { chunking, ..Default::default() }).unwrap();
        let text = serde_json::to_string(&model).unwrap();
        let back: Reconstruction = serde_json::from_str(&text).unwrap();
        // serde_json reads a float within an ulp of what it wrote.
        let (got, want) = (back.error(&reference).unwrap(), model.error(&reference).unwrap());
        assert!((got - want).abs() <= 1e-14 * want, "{got} vs {want}");
        let (got, want) = (back.bounds().upper.unwrap(), model.bounds().upper.unwrap());
        assert!((got - want).abs() <= 1e-14 * want, "{got} vs {want}");
        assert!(back.reference_chunks()[1].sampling_error.is_nan());
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["components"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<Reconstruction>(value).is_err());
    }
}

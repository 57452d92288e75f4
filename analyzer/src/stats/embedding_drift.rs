//! Drift between two sets of embeddings, as Evidently 0.7.23's embedding drift methods
//! (`evidently/legacy/metrics/data_drift/embedding_drift_methods.py`): [`distance()`],
//! [`ratio()`], [`mmd()`] and [`model()`], each with Evidently's options and defaults, each
//! optionally after Evidently's `PCA(n_components, random_state=0)` ([`pca`]).
//!
//! Every method takes the reference matrix first and the current matrix second (Evidently's
//! methods take them the other way round; its metric passes them correctly) and returns the
//! score and verdict Evidently computes, with the threshold the score was compared with.
//! Evidently draws its bootstrap samples and its classifier's split from numpy's legacy
//! generator with fixed seeds; those draws are replayed here ([`super::mt19937`]), so the
//! bootstrapped thresholds are Evidently's, not estimates of them.
//!
//! `EmbeddingsDriftMetric` without a method runs [`Method::metric_default`]: the domain
//! classifier, bootstrapped when the reference has fewer than 1000 rows.
//!
//! Agreement with Evidently, checked by `tests/embedding_golden.rs` on fixtures that
//! `analyzer/golden/embeddings.py` generates by running Evidently: verdicts equal; the domain
//! classifier's weights bit for bit and its AUC within an ulp; `ratio` exact; `distance` within
//! 1e-13 relative (BLAS's order of additions); `mmd` within 2e-12 relative (its kernel is summed
//! tile by tile, numpy's sums row by row: an MMD² of 1e-4 is a difference of sums near 1, each
//! a few ulps from numpy's); after PCA within 3e-13 (Householder and QL iterations where LAPACK
//! divides and conquers, or Jacobi rotations).
//!
//! Costs, for n rows of both sides and d dimensions: `distance` O(n·d), `ratio` O(d·n·log n),
//! `model` O(epochs·n·d), `mmd` O(n²·d); PCA adds O(n·d² + d³) (covariance solver, n ≥ 10·d),
//! O(n·d·min(n, d)) per Jacobi sweep (full solver) or O(n·d·k) per power iteration
//! (randomized solver). The quadratic parts (kernel, covariance, projections), the components
//! of `ratio` and the bootstraps run on all cores; every sum is taken in an order the data alone
//! fixes, so the results do not depend on the number of cores. The SGD of `model` replays one
//! step after the other, as scikit-learn does.

pub mod distance;
pub mod linalg;
pub mod mmd;
pub mod model;
pub mod pca;
pub mod ratio;
pub mod spec;

use super::{Error, Result};
use crate::parallel::{parallel, parallel_map};

pub use distance::{Distance, DistanceOptions, distance};
pub use mmd::{MmdOptions, mmd};
pub use model::{ModelOptions, model};
pub use ratio::{RatioOptions, ratio, ratio_with};
pub use spec::Spec;

/// Bootstrap rounds of the `distance` and `mmd` methods (Evidently's `N_BOOTSTRAP`) and of the
/// random classifiers of `model`.
pub const N_BOOTSTRAP: usize = 100;

/// A borrowed `rows × dims` matrix of embeddings, row-major, every value finite.
#[derive(Debug, Clone, Copy)]
pub struct Embeddings<'a> {
    values: &'a [f64],
    dims: usize,
}

impl<'a> Embeddings<'a> {
    /// `values` holds the rows one after another, `dims` values each.
    ///
    /// Errors when `dims` is 0, when `values` does not divide into rows of `dims`, or when a
    /// value is NaN or infinite (Evidently's mean-based methods would skip NaN while its
    /// classifier refuses it; here every method refuses it).
    pub fn new(values: &'a [f64], dims: usize) -> Result<Self> {
        if dims == 0 {
            return Err(Error::Invalid("embeddings need at least one dimension".into()));
        }
        if values.len() % dims != 0 {
            return Err(Error::Invalid(format!("{} values do not make rows of {dims} dimensions", values.len())));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid("embeddings contain NaN or infinite values".into()));
        }
        Ok(Embeddings { values, dims })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.dims
    }

    /// Number of dimensions (columns).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &'a [f64] {
        &self.values[i * self.dims..(i + 1) * self.dims]
    }

    /// All values, row after row.
    pub fn values(&self) -> &'a [f64] {
        self.values
    }

    /// Column `j`, copied out.
    pub fn column(&self, j: usize) -> Vec<f64> {
        self.values.iter().skip(j).step_by(self.dims).copied().collect()
    }

    /// A view of an owned matrix whose values are already known to be finite.
    fn of(m: &'a linalg::Matrix) -> Self {
        Embeddings { values: &m.data, dims: m.cols }
    }
}

/// A method's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingDrift {
    /// The drift score: a distance, a share of drifted components, an MMD² or a ROC AUC.
    pub score: f64,
    /// Whether the embeddings drifted.
    pub drifted: bool,
    /// What the score was compared with: the method's threshold, or with `bootstrap` the
    /// bootstrapped percentile (NaN when Evidently's percentile is NaN; nothing drifts then).
    pub threshold: f64,
}

/// One of Evidently's four methods with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// [`distance()`]: a distance between the mean embeddings.
    Distance(DistanceOptions),
    /// [`ratio()`]: the share of components whose own drift test fires.
    Ratio(RatioOptions),
    /// [`mmd()`]: the unbiased MMD² with an RBF kernel.
    Mmd(MmdOptions),
    /// [`model()`]: the ROC AUC of a domain classifier.
    Model(ModelOptions),
}

impl Method {
    /// What `EmbeddingsDriftMetric` runs when given no method:
    /// `model(bootstrap=reference rows < 1000)`.
    pub fn metric_default(reference_rows: usize) -> Method {
        Method::Model(ModelOptions { bootstrap: reference_rows < 1000, ..ModelOptions::default() })
    }

    /// Evidently's name of the method ("distance", "ratio", "mmd", "model").
    pub fn name(&self) -> &'static str {
        match self {
            Method::Distance(_) => "distance",
            Method::Ratio(_) => "ratio",
            Method::Mmd(_) => "mmd",
            Method::Model(_) => "model",
        }
    }
}

/// Runs `method` on `reference` and `current` (the ratio method with its default component
/// test, the normed Wasserstein distance).
pub fn embedding_drift(reference: Embeddings<'_>, current: Embeddings<'_>, method: &Method) -> Result<EmbeddingDrift> {
    match method {
        Method::Distance(o) => distance(reference, current, o),
        Method::Ratio(o) => ratio(reference, current, o),
        Method::Mmd(o) => mmd(reference, current, o),
        Method::Model(o) => model(reference, current, o),
    }
}

/// Checks the shapes every method needs: both sides non-empty, same dimensions.
fn check_pair(reference: &Embeddings<'_>, current: &Embeddings<'_>) -> Result<()> {
    if reference.rows() == 0 {
        return Err(Error::Empty("reference"));
    }
    if current.rows() == 0 {
        return Err(Error::Empty("current"));
    }
    if reference.dims() != current.dims() {
        return Err(Error::Invalid(format!(
            "reference has {} dimensions, current {}",
            reference.dims(),
            current.dims()
        )));
    }
    Ok(())
}

/// Runs `f` on the pair, or on its PCA projection when `pca_components` is set (Evidently
/// treats 0 like unset).
fn with_pca<T>(
    reference: Embeddings<'_>,
    current: Embeddings<'_>,
    pca_components: Option<usize>,
    f: impl FnOnce(Embeddings<'_>, Embeddings<'_>) -> Result<T>,
) -> Result<T> {
    check_pair(&reference, &current)?;
    match pca_components.filter(|&k| k > 0) {
        None => f(reference, current),
        Some(k) => {
            let (r, c) = pca::project(reference, current, k)?;
            f(Embeddings::of(&r), Embeddings::of(&c))
        }
    }
}

/// Column means of the rows `rows` of `m`, as pandas' `DataFrame.mean(axis=0)` computes them
/// on Evidently's frames: each column summed row after row, then divided by the row count
/// (NaN for no rows).
fn column_means(m: Embeddings<'_>, rows: impl Iterator<Item = usize>) -> Vec<f64> {
    let mut sums = vec![0.0; m.dims()];
    let mut count = 0usize;
    for i in rows {
        for (s, v) in sums.iter_mut().zip(m.row(i)) {
            *s += v;
        }
        count += 1;
    }
    let n = count as f64;
    sums.into_iter().map(|s| s / n).collect()
}

/// Σ aᵢ·bᵢ in index order over the common length: one running sum, as scikit-learn's
/// `WeightVector.dot` adds (the SGD replay needs its bits), and as every entry of
/// [`linalg::Packed::products_into`] adds. An indexed loop: the tests run this crate
/// unoptimised, where iterator adaptors cost several times more per element.
#[expect(clippy::needless_range_loop, reason = "indexed on purpose, see the doc comment")]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = 0.0;
    for k in 0..n {
        s += a[k] * b[k];
    }
    s
}

/// Σ aᵢ·bᵢ over the common length in four interleaved running sums added at the end, as BLAS
/// adds (the order differs from [`dot`] by rounding only): four independent chains of
/// additions instead of one, several times faster where no exact order is owed.
fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0; 4];
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for l in 0..4 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail = n - n % 4;
    let mut s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for k in tail..n {
        s += a[k] * b[k];
    }
    s
}

/// `np.percentile(values, percent)` with numpy's default linear interpolation, in numpy's order
/// of operations; NaN when a value is NaN; an error, as numpy's, outside [0, 100].
fn np_percentile(mut values: Vec<f64>, percent: f64) -> Result<f64> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(Error::Invalid("Percentiles must be in the range [0, 100]".into()));
    }
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return Ok(f64::NAN);
    }
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    let q = percent / 100.0;
    let virtual_index = (n - 1) as f64 * q;
    if virtual_index >= (n - 1) as f64 {
        return Ok(values[n - 1]);
    }
    let previous = virtual_index.floor();
    let gamma = virtual_index - previous;
    let (a, b) = (values[previous as usize], values[previous as usize + 1]);
    let diff = b - a;
    Ok(if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile(np.arange(1, 101) ** 0.5, 100 * 0.95) = 9.749352576125151.
        let v: Vec<f64> = (1..=100).map(|i| f64::from(i).sqrt()).collect();
        assert_eq!(np_percentile(v, 100.0 * 0.95), Ok(9.749352576125151));
        assert!(np_percentile(vec![1.0, f64::NAN], 50.0).unwrap().is_nan());
        assert_eq!(np_percentile(vec![3.0], 95.0), Ok(3.0));
        assert!(np_percentile(vec![3.0], 101.0).is_err());
    }

    #[test]
    fn dot_lanes_is_dot_to_rounding() {
        let a: Vec<f64> = (0..37).map(|i| f64::from(i).sin()).collect();
        let b: Vec<f64> = (0..37).map(|i| f64::from(i).cos()).collect();
        assert!((dot_lanes(&a, &b) - dot(&a, &b)).abs() < 1e-14);
        assert_eq!(dot_lanes(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]), 130.0);
    }

    #[test]
    fn embeddings_check_their_shape() {
        assert!(Embeddings::new(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(Embeddings::new(&[1.0, f64::NAN], 2).is_err());
        let e = Embeddings::new(&[1.0, 2.0, 3.0, 4.0], 2).unwrap();
        assert_eq!((e.rows(), e.dims(), e.row(1), e.column(1)), (2, 2, &[3.0, 4.0][..], vec![2.0, 4.0]));
    }

    #[test]
    fn metric_default_bootstraps_small_references() {
        assert_eq!(Method::metric_default(999), Method::Model(ModelOptions { bootstrap: true, ..Default::default() }));
        assert_eq!(Method::metric_default(1000), Method::Model(ModelOptions::default()));
    }
}

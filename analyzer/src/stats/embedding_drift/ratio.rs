//! Evidently's `ratio` method (`RatioDriftMethod`): the share of embedding components whose own
//! drift test fires.

use std::ops::Range;

use super::{EmbeddingDrift, Embeddings, parallel_map, with_pca};
use crate::stats::{Result, wasserstein};

/// Evidently's `ratio(...)` options, with its defaults. The component test itself is the
/// normed Wasserstein distance in [`ratio`], any test in [`ratio_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct RatioOptions {
    /// Threshold of the per-component test (default 0.1).
    pub component_stattest_threshold: f64,
    /// Drift when the share of drifted components exceeds this (default 0.2).
    pub threshold: f64,
    /// Project both sides on the reference's first principal components first (default none).
    pub pca_components: Option<usize>,
}

impl Default for RatioOptions {
    fn default() -> Self {
        RatioOptions { component_stattest_threshold: 0.1, threshold: 0.2, pca_components: None }
    }
}

/// Evidently's `RatioDriftMethod` with its default component test, `wasserstein`: a component
/// drifts when its Wasserstein distance normed by the reference's standard deviation
/// ([`wasserstein::wasserstein`]) is ≥ `component_stattest_threshold`. The score is the
/// share of drifted components, the verdict score > `threshold`.
///
/// Cost: O(d·(n_ref + n_cur)·log(n_ref + n_cur)) (a sort per component), on all cores.
pub fn ratio(reference: Embeddings<'_>, current: Embeddings<'_>, options: &RatioOptions) -> Result<EmbeddingDrift> {
    let t = options.component_stattest_threshold;
    ratio_with(reference, current, options, |r, c| Ok(wasserstein::wasserstein(r, c)? >= t))
}

/// [`ratio`] with another component test (Evidently's `component_stattest`):
/// `component_drifted(reference_column, current_column)` says whether one component drifted
/// at `options.component_stattest_threshold` (the caller applies it; e.g. the drift layer's
/// test of that name on a numerical column).
///
/// The components are tested independently, 32 at a time on all cores; an error is the
/// first component's in column order, as when testing them one after another.
pub fn ratio_with(
    reference: Embeddings<'_>,
    current: Embeddings<'_>,
    options: &RatioOptions,
    component_drifted: impl Fn(&[f64], &[f64]) -> Result<bool> + Sync,
) -> Result<EmbeddingDrift> {
    with_pca(reference, current, options.pca_components, |reference, current| {
        let dims = reference.dims();
        let groups = parallel_map(dims.div_ceil(GROUP), |g| {
            let columns = g * GROUP..((g + 1) * GROUP).min(dims);
            let (r, c) = (columns_of(reference, columns.clone()), columns_of(current, columns));
            r.iter().zip(&c).map(|(r, c)| component_drifted(r, c)).collect::<Vec<_>>()
        });
        let mut drifted = 0usize;
        for verdict in groups.into_iter().flatten() {
            drifted += usize::from(verdict?);
        }
        let score = drifted as f64 / dims as f64;
        Ok(EmbeddingDrift { score, drifted: score > options.threshold, threshold: options.threshold })
    })
}

/// Components a work item of [`ratio_with`] tests, their columns copied out in one pass over
/// the rows (32 values of a row: four whole cache lines; 51 MB of columns per item at 100k
/// rows a side).
const GROUP: usize = 32;

/// The columns `columns` of `m`, copied out together.
fn columns_of(m: Embeddings<'_>, columns: Range<usize>) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = columns.clone().map(|_| Vec::with_capacity(m.rows())).collect();
    for i in 0..m.rows() {
        for (column, &v) in out.iter_mut().zip(&m.row(i)[columns.clone()]) {
            column.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_drifted_components() {
        // Component 0 moves by far more than its spread, component 1 does not move.
        let r = [0.0, 5.0, 1.0, 6.0, 2.0, 7.0];
        let c = [10.0, 5.0, 11.0, 6.0, 12.0, 7.0];
        let (r, c) = (Embeddings::new(&r, 2).unwrap(), Embeddings::new(&c, 2).unwrap());
        let got = ratio(r, c, &RatioOptions::default()).unwrap();
        assert_eq!(got, EmbeddingDrift { score: 0.5, drifted: true, threshold: 0.2 });
    }
}

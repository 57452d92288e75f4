//! Evidently's `mmd` method (`MMDDriftMethod`): the unbiased squared maximum mean discrepancy
//! between reference and current embeddings under an RBF kernel.
//!
//! Not [`crate::stats::mmd`]: that is Evidently's one-dimensional `empirical_mmd` stattest,
//! whose kernel width comes from the reference's own distances and whose p-value comes from
//! permutations. Only the random generator ([`Mt19937`]) is shared.

use super::{EmbeddingDrift, Embeddings, N_BOOTSTRAP, dot, np_percentile, with_pca};
use crate::stats::mt19937::Mt19937;
use crate::stats::{Error, Result, np_sum};

/// Rows Evidently samples (`DataFrame.sample(min(n, 1000), random_state=0)`) for the median
/// distance that sets the kernel width.
const MEDIAN_SAMPLE: usize = 1000;
/// numpy's reduction buffer (`np.getbufsize()`): a strided view is summed in chunks of whole
/// rows that fit in it, each chunk pairwise, the chunks one after another.
const NUMPY_BUFSIZE: usize = 8192;

/// Evidently's `mmd(...)` options, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MmdOptions {
    /// Drift when MMD² exceeds this (default 0.015); unused with `bootstrap`.
    pub threshold: f64,
    /// Compare with the bootstrapped `quantile_probability` quantile of reference-only MMD²
    /// instead of `threshold` (default false).
    pub bootstrap: bool,
    /// The quantile of the bootstrap (default 0.05).
    pub quantile_probability: f64,
    /// Project both sides on the reference's first principal components first (default none).
    pub pca_components: Option<usize>,
}

impl Default for MmdOptions {
    fn default() -> Self {
        MmdOptions { threshold: 0.015, bootstrap: false, quantile_probability: 0.05, pca_components: None }
    }
}

/// Evidently's `MMDDriftMethod`.
///
/// σ² is the squared median of the Euclidean distances between up to 1000 reference rows and
/// up to 1000 current rows (each sampled as pandas' `sample(random_state=0)` does: the first
/// rows of numpy's `RandomState(0).permutation`); the kernel is k(a, b) = exp(−‖a − b‖²/σ²)
/// with scikit-learn's ‖a‖² − 2a·b + ‖b‖² (clipped at 0, exactly 0 on the diagonal); MMD²ᵤ is
/// Σ_{i≠j} k(xᵢ, xⱼ)/(m(m−1)) + Σ_{i≠j} k(yᵢ, yⱼ)/(n(n−1)) − 2·Σ k(xᵢ, yⱼ)/(mn), summed as numpy
/// sums the blocks of the kernel matrix. The score is max(MMD²ᵤ, 0); the verdict compares
/// MMD²ᵤ itself with `threshold` (drift when greater).
///
/// With `bootstrap` the comparison is with `np.percentile` at `100·quantile_probability` of
/// 100 reference-only statistics: the kernel over the reference with σ² from the reference's
/// own sampled distances, and in round i (`np.random.seed(i)`) ⌊m²/(m+n)⌋ and ⌊mn/(m+n)⌋
/// reference rows drawn with replacement as the two samples. The draws are replayed.
///
/// Needs two rows per side (Evidently divides by m(m − 1) and n(n − 1)), and with `bootstrap`
/// two rows per bootstrap sample. A zero median distance makes the kernel NaN, as in Evidently:
/// the score is NaN and nothing drifts.
///
/// Cost: O((m + n)²·d) time and O(m + n) memory for the statistic (the kernel is computed row
/// by row, never held; Evidently holds all (m + n)² entries); with `bootstrap` O(m²·d) time and
/// O(m²) memory for the reference's kernel (held, as Evidently holds it; an error when the
/// allocation fails) plus O((m + n)²) per round. Quadratic: for 100k rows a side, subsample.
pub fn mmd(reference: Embeddings<'_>, current: Embeddings<'_>, options: &MmdOptions) -> Result<EmbeddingDrift> {
    with_pca(reference, current, options.pca_components, |x, y| {
        let (m, n) = (x.rows(), y.rows());
        let xx = squared_norms(x);
        let yy = squared_norms(y);
        let (sx, sy) = (sample(m), sample(n));
        let mut cross = Vec::with_capacity(sx.len() * sy.len());
        for &i in &sx {
            for &j in &sy {
                cross.push(squared_distance(x.row(i), xx[i], y.row(j), yy[j]).sqrt());
            }
        }
        let median = np_median(cross);
        let gamma = 1.0 / (median * median);
        if m < 2 || n < 2 {
            return Err(Error::Invalid("float division by zero: MMD needs two rows on each side".into()));
        }
        let mmd2u = statistic(x, &xx, y, &yy, gamma);
        let score = if mmd2u.is_nan() || mmd2u > 0.0 { mmd2u } else { 0.0 };
        if !options.bootstrap {
            return Ok(EmbeddingDrift { score, drifted: mmd2u > options.threshold, threshold: options.threshold });
        }
        let mut within = Vec::with_capacity(sx.len() * sx.len());
        for (a, &i) in sx.iter().enumerate() {
            for (b, &j) in sx.iter().enumerate() {
                within.push(if a == b { 0.0 } else { squared_distance(x.row(i), xx[i], x.row(j), xx[j]).sqrt() });
            }
        }
        let median_x = np_median(within);
        let gamma_x = 1.0 / (median_x * median_x);
        // The kernel over the reference, held as Evidently holds it. A dot product serves both
        // (i, j) and (j, i); the two entries still add the norms in their own order.
        let mut k: Vec<f64> = Vec::new();
        let entries = m.checked_mul(m).filter(|&e| k.try_reserve_exact(e).is_ok()).ok_or_else(|| {
            Error::Invalid(format!("the bootstrapped MMD holds a {m}×{m} kernel, which does not fit in memory"))
        })?;
        k.resize(entries, (0.0 * -gamma_x).exp());
        for i in 0..m {
            for j in i + 1..m {
                let g = dot(x.row(i), x.row(j));
                k[i * m + j] = (clip(-2.0 * g + xx[i] + xx[j]) * -gamma_x).exp();
                k[j * m + i] = (clip(-2.0 * g + xx[j] + xx[i]) * -gamma_x).exp();
            }
        }
        let (mm, nn) = (m as u128, n as u128);
        let x_size = ((mm * mm / (mm + nn)) as usize).max(1);
        let y_size = ((mm * nn / (mm + nn)) as usize).max(1);
        if x_size < 2 || y_size < 2 {
            return Err(Error::Invalid("float division by zero: a bootstrap sample has one row".into()));
        }
        let mut stats = Vec::with_capacity(N_BOOTSTRAP);
        let mut buffer = Vec::with_capacity(x_size.max(y_size) * x_size.max(y_size));
        for round in 0..N_BOOTSTRAP {
            let mut rng = Mt19937::new(round as u32);
            let xi: Vec<usize> = (0..x_size).map(|_| rng.interval(m as u64 - 1) as usize).collect();
            let yi: Vec<usize> = (0..y_size).map(|_| rng.interval(m as u64 - 1) as usize).collect();
            // Fancy indexing makes contiguous blocks, summed pairwise over all their entries.
            let mut block = |a: &[usize], b: &[usize]| {
                buffer.clear();
                for &i in a {
                    let row = &k[i * m..(i + 1) * m];
                    buffer.extend(b.iter().map(|&j| row[j]));
                }
                np_sum(&buffer)
            };
            let (kxx, kyy, kxy) = (block(&xi, &xi), block(&yi, &yi), block(&xi, &yi));
            let diagonal = |a: &[usize]| np_sum(&a.iter().map(|&i| k[i * m + i]).collect::<Vec<_>>());
            stats.push(unbiased(x_size as f64, y_size as f64, kxx - diagonal(&xi), kyy - diagonal(&yi), kxy));
        }
        let threshold = np_percentile(stats, 100.0 * options.quantile_probability)?;
        Ok(EmbeddingDrift { score, drifted: mmd2u > threshold, threshold })
    })
}

/// MMD²ᵤ of `x` against `y` with the kernel exp(−γ·d²), the kernel matrix of the stacked rows
/// computed one row at a time and its three blocks summed as numpy sums `K[:m, :m]`,
/// `K[m:, m:]` and `K[:m, m:]` (views, hence chunked; see [`ViewSum`]).
fn statistic(x: Embeddings<'_>, xx: &[f64], y: Embeddings<'_>, yy: &[f64], gamma: f64) -> f64 {
    let (m, n) = (x.rows(), y.rows());
    let stacked = |i: usize| if i < m { (x.row(i), xx[i]) } else { (y.row(i - m), yy[i - m]) };
    let kernel = |i: usize, j: usize| {
        let d = if i == j {
            0.0
        } else {
            let ((a, na), (b, nb)) = (stacked(i), stacked(j));
            squared_distance(a, na, b, nb)
        };
        (d * -gamma).exp()
    };
    let (mut sx, mut sy, mut sxy) = (ViewSum::new(m), ViewSum::new(n), ViewSum::new(n));
    let (mut dx, mut dy) = (Vec::with_capacity(m), Vec::with_capacity(n));
    let mut row = vec![0.0; m + n];
    for i in 0..m + n {
        let from = if i < m { 0 } else { m };
        for (j, r) in row.iter_mut().enumerate().skip(from) {
            *r = kernel(i, j);
        }
        if i < m {
            sx.push_row(&row[..m]);
            sxy.push_row(&row[m..]);
            dx.push(row[i]);
        } else {
            sy.push_row(&row[m..]);
            dy.push(row[i]);
        }
    }
    unbiased(m as f64, n as f64, sx.finish() - np_sum(&dx), sy.finish() - np_sum(&dy), sxy.finish())
}

/// Evidently's `MMD2u` from the block sums (diagonals already taken out of the first two).
fn unbiased(m: f64, n: f64, kx_off_diagonal: f64, ky_off_diagonal: f64, kxy: f64) -> f64 {
    1.0 / (m * (m - 1.0)) * kx_off_diagonal + 1.0 / (n * (n - 1.0)) * ky_off_diagonal - 2.0 / (m * n) * kxy
}

/// numpy's sum of a 2-D strided view: its rows gathered into chunks of whole rows that fit the
/// 8192-value reduction buffer (one row when a row is longer), each chunk summed pairwise,
/// the chunk sums added in order.
struct ViewSum {
    rows_per_chunk: usize,
    buffer: Vec<f64>,
    rows: usize,
    total: f64,
}

impl ViewSum {
    fn new(cols: usize) -> Self {
        ViewSum { rows_per_chunk: (NUMPY_BUFSIZE / cols.max(1)).max(1), buffer: Vec::new(), rows: 0, total: 0.0 }
    }

    fn push_row(&mut self, row: &[f64]) {
        self.buffer.extend_from_slice(row);
        self.rows += 1;
        if self.rows == self.rows_per_chunk {
            self.total += np_sum(&self.buffer);
            self.buffer.clear();
            self.rows = 0;
        }
    }

    fn finish(mut self) -> f64 {
        if !self.buffer.is_empty() {
            self.total += np_sum(&self.buffer);
        }
        self.total
    }
}

/// Row `i`'s ‖xᵢ‖² for every row (scikit-learn's `row_norms(squared=True)`).
fn squared_norms(x: Embeddings<'_>) -> Vec<f64> {
    (0..x.rows()).map(|i| dot(x.row(i), x.row(i))).collect()
}

/// scikit-learn's `euclidean_distances(squared=True)` entry: max((−2·a·b + ‖a‖²) + ‖b‖², 0).
fn squared_distance(a: &[f64], aa: f64, b: &[f64], bb: f64) -> f64 {
    clip(-2.0 * dot(a, b) + aa + bb)
}

/// `np.maximum(d, 0)`: negative rounding residue becomes 0, NaN stays.
fn clip(d: f64) -> f64 {
    if d.is_nan() || d > 0.0 { d } else { 0.0 }
}

/// The rows pandas' `sample(min(len, 1000), random_state=0)` picks, in its order.
fn sample(len: usize) -> Vec<usize> {
    let mut p = Mt19937::new(0).permutation(len);
    p.truncate(len.min(MEDIAN_SAMPLE));
    p
}

/// `np.median`: the middle value, or the mean of the two middle values; NaN if any is NaN.
fn np_median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let h = values.len() / 2;
    let (_, &mut upper, _) = values.select_nth_unstable_by(h, f64::total_cmp);
    if values.len() % 2 == 1 {
        return upper;
    }
    let lower = values[..h].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lower + upper) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_as_numpy() {
        assert_eq!(np_median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(np_median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn view_sum_chunks_whole_rows() {
        // 3 columns: 2730 rows per chunk; 2731 rows make two chunks.
        let mut s = ViewSum::new(3);
        for _ in 0..2731 {
            s.push_row(&[0.1, 0.2, 0.3]);
        }
        let chunk: Vec<f64> = std::iter::repeat_n([0.1, 0.2, 0.3], 2730).flatten().collect();
        assert_eq!(s.finish(), np_sum(&chunk) + np_sum(&[0.1, 0.2, 0.3]));
    }

    #[test]
    fn separated_clouds_drift() {
        let r: Vec<f64> = (0..20).map(|i| f64::from(i % 5) * 0.1).collect();
        let c: Vec<f64> = r.iter().map(|v| v + 3.0).collect();
        let (r, c) = (Embeddings::new(&r, 2).unwrap(), Embeddings::new(&c, 2).unwrap());
        let got = mmd(r, c, &MmdOptions::default()).unwrap();
        assert!(got.drifted && got.score > 0.5, "{got:?}");
    }
}

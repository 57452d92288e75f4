//! Evidently's `mmd` method (`MMDDriftMethod`): the unbiased squared maximum mean discrepancy
//! between reference and current embeddings under an RBF kernel.
//!
//! Not [`crate::stats::mmd`]: that is Evidently's one-dimensional `empirical_mmd` stattest,
//! whose kernel width comes from the reference's own distances and whose p-value comes from
//! permutations. Only the random generator ([`Mt19937`]) is shared.

use super::linalg::{self, Matrix};
use super::{EmbeddingDrift, Embeddings, N_BOOTSTRAP, dot, np_percentile, parallel, with_pca};
use crate::stats::mt19937::Mt19937;
use crate::stats::{Error, Result, np_sum, np_sum_by};

/// Rows Evidently samples (`DataFrame.sample(min(n, 1000), random_state=0)`) for the median
/// distance that sets the kernel width.
const MEDIAN_SAMPLE: usize = 1000;

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
/// Σ_{i≠j} k(xᵢ, xⱼ)/(m(m−1)) + Σ_{i≠j} k(yᵢ, yⱼ)/(n(n−1)) − 2·Σ k(xᵢ, yⱼ)/(mn). The score is
/// max(MMD²ᵤ, 0); the verdict compares MMD²ᵤ itself with `threshold` (drift when greater).
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
/// The kernel's dot products are formed in blocks on all cores ([`linalg::upper_tiles`]), each
/// a running sum (BLAS's differ from it in the last bits); the kernel is symmetric, so each pair
/// of rows is formed once. The sums differ from numpy's in their order only.
///
/// Cost: O((m + n)²·d/2) time and O(m + n) memory for the statistic (the kernel is summed tile
/// by tile, never held; Evidently holds all (m + n)² entries); with `bootstrap` O(m²·(d/2 + 200))
/// time and O(m²) memory for the reference's kernel (held, as Evidently holds it; an error when
/// the allocation fails) and the 100 rounds' weighted sums of it. Quadratic: for 100k rows a
/// side, subsample.
pub fn mmd(reference: Embeddings<'_>, current: Embeddings<'_>, options: &MmdOptions) -> Result<EmbeddingDrift> {
    with_pca(reference, current, options.pca_components, |x, y| {
        let (m, n, dims) = (x.rows(), y.rows(), x.dims());
        let xx = squared_norms(x);
        let yy = squared_norms(y);
        let (sx, sy) = (sample(m), sample(n));
        let (x_sample, y_sample) = (gather(x, &sx), gather(y, &sy));
        let products = linalg::products(&x_sample, &y_sample, dims);
        let mut cross = Vec::with_capacity(sx.len() * sy.len());
        for (&i, row) in sx.iter().zip(products.data.chunks(sy.len().max(1))) {
            cross.extend(sy.iter().zip(row).map(|(&j, &g)| squared_distance(g, xx[i], yy[j]).sqrt()));
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
        let products = linalg::gram_of_rows(&x_sample, dims);
        let mut within = Vec::with_capacity(sx.len() * sx.len());
        for (a, (&i, row)) in sx.iter().zip(products.data.chunks(sx.len())).enumerate() {
            for (b, (&j, &g)) in sx.iter().zip(row).enumerate() {
                within.push(if a == b { 0.0 } else { squared_distance(g, xx[i], xx[j]).sqrt() });
            }
        }
        let median_x = np_median(within);
        let gamma_x = 1.0 / (median_x * median_x);
        let threshold = np_percentile(bootstrap(x, &xx, gamma_x, n)?, 100.0 * options.quantile_probability)?;
        Ok(EmbeddingDrift { score, drifted: mmd2u > threshold, threshold })
    })
}

/// MMD²ᵤ of `x` against `y` with the kernel exp(−γ·d²): the kernel of the stacked rows formed
/// tile by tile over its upper triangle ([`linalg::upper_tiles`]), each tile's entries summed
/// pairwise, the tiles' sums added in order.
fn statistic(x: Embeddings<'_>, xx: &[f64], y: Embeddings<'_>, yy: &[f64], gamma: f64) -> f64 {
    let (m, n, dims) = (x.rows(), y.rows(), x.dims());
    // Evidently sums each block whole and takes the diagonal out again. The diagonal is
    // exp(−γ·0) = 1, or NaN when γ is infinite (a zero median), and then so is the statistic.
    if (0.0 * -gamma).exp().is_nan() {
        return f64::NAN;
    }
    // Blocks of x's rows, then of y's: a tile lies in one of K[:m, :m], K[m:, m:], K[:m, m:].
    let (x_blocks, y_blocks) = (linalg::blocks(m), linalg::blocks(n));
    let mut packed = linalg::pack_rows(x.values(), dims, &x_blocks);
    packed.extend(linalg::pack_rows(y.values(), dims, &y_blocks));
    let mut blocks = x_blocks;
    blocks.extend(y_blocks.into_iter().map(|r| r.start + m..r.end + m));
    // Row i of the stacked matrix: its row on its side and that side's squared norms.
    let side = |i: usize| if i < m { (i, xx) } else { (i - m, yy) };
    let states = vec![TileSums::default(); blocks.len()];
    let sums = linalg::upper_tiles(&packed, states, |sums, ib, jb, tile| {
        let (ri, rj) = (&blocks[ib], &blocks[jb]);
        let ((i0, ni), (j0, nj)) = (side(ri.start), side(rj.start));
        let (ni, nj) = (&ni[i0..i0 + ri.len()], &nj[j0..j0 + rj.len()]);
        sums.values.clear();
        for (r, products) in tile.chunks(rj.len()).enumerate() {
            // A tile on the diagonal: only the entries right of it (the kernel is symmetric).
            let from = if ib == jb { r + 1 } else { 0 };
            for (&g, &b) in products.iter().zip(nj).skip(from) {
                sums.values.push((squared_distance(g, ni[r], b) * -gamma).exp());
            }
        }
        let block = match (ri.start < m, rj.start < m) {
            (true, true) => 0,
            (false, false) => 1,
            _ => 2,
        };
        sums.blocks[block] += np_sum(&sums.values);
    });
    let mut total = [0.0; 3];
    for s in &sums {
        for (t, b) in total.iter_mut().zip(s.blocks) {
            *t += b;
        }
    }
    let [upper_x, upper_y, xy] = total;
    unbiased(m as f64, n as f64, 2.0 * upper_x, 2.0 * upper_y, xy)
}

/// What a block of rows of [`statistic`] sums: the kernel's entries in its tiles of the
/// blocks x–x (above the diagonal), y–y (above the diagonal) and x–y, and a buffer of entries.
#[derive(Debug, Clone, Default)]
struct TileSums {
    blocks: [f64; 3],
    values: Vec<f64>,
}

/// The 100 bootstrapped statistics: the kernel K over the reference with `gamma`, and for round
/// i the counts cx and cy of the rows drawn (`np.random.seed(i)`, ⌊m²/(m+n)⌋ then ⌊mn/(m+n)⌋
/// draws with replacement); Evidently's block sums of K at the drawn rows are cxᵀKcx, cyᵀKcy
/// and cxᵀKcy, its diagonals Σ cxᵢ·Kᵢᵢ and Σ cyᵢ·Kᵢᵢ. The products K·c of all rounds at once
/// ([`linalg::products`]) replace 100 gathers of half the kernel.
fn bootstrap(x: Embeddings<'_>, xx: &[f64], gamma: f64, n: usize) -> Result<Vec<f64>> {
    let (m, dims) = (x.rows(), x.dims());
    let (mm, nn) = (m as u128, n as u128);
    let x_size = ((mm * mm / (mm + nn)) as usize).max(1);
    let y_size = ((mm * nn / (mm + nn)) as usize).max(1);
    let mut k = Matrix::try_zeros(m, m).ok_or_else(|| {
        Error::Invalid(format!("the bootstrapped MMD holds a {m}×{m} kernel, which does not fit in memory"))
    })?;
    if x_size < 2 || y_size < 2 {
        return Err(Error::Invalid("float division by zero: a bootstrap sample has one row".into()));
    }
    linalg::gram_of_rows_into(x.values(), dims, &mut k);
    parallel(k.data.chunks_mut(m).collect(), |i, row| {
        for (j, g) in row.iter_mut().enumerate() {
            let d = if i == j { 0.0 } else { squared_distance(*g, xx[i], xx[j]) };
            *g = (d * -gamma).exp();
        }
    });
    // Row 2i: round i's counts of the first sample, row 2i + 1 of the second.
    let mut counts = vec![0.0; 2 * N_BOOTSTRAP * m];
    for (round, c) in counts.chunks_mut(2 * m).enumerate() {
        let mut rng = Mt19937::new(round as u32);
        for (sample, draws) in [x_size, y_size].into_iter().enumerate() {
            for _ in 0..draws {
                c[sample * m + rng.interval(m as u64 - 1) as usize] += 1.0;
            }
        }
    }
    let weighted = linalg::products(&k.data, &counts, m);
    let columns = 2 * N_BOOTSTRAP;
    let stats = (0..N_BOOTSTRAP).map(|round| {
        let (cx, cy) = counts[2 * round * m..2 * (round + 1) * m].split_at(m);
        let kc = |i: usize, sample: usize| weighted.data[i * columns + 2 * round + sample];
        let kxx = np_sum_by(m, |i| cx[i] * kc(i, 0));
        let kyy = np_sum_by(m, |i| cy[i] * kc(i, 1));
        let kxy = np_sum_by(m, |i| cx[i] * kc(i, 1));
        let dx = np_sum_by(m, |i| cx[i] * k.data[i * m + i]);
        let dy = np_sum_by(m, |i| cy[i] * k.data[i * m + i]);
        unbiased(x_size as f64, y_size as f64, kxx - dx, kyy - dy, kxy)
    });
    Ok(stats.collect())
}

/// Evidently's `MMD2u` from the block sums (diagonals already taken out of the first two).
fn unbiased(m: f64, n: f64, kx_off_diagonal: f64, ky_off_diagonal: f64, kxy: f64) -> f64 {
    1.0 / (m * (m - 1.0)) * kx_off_diagonal + 1.0 / (n * (n - 1.0)) * ky_off_diagonal - 2.0 / (m * n) * kxy
}

/// Row `i`'s ‖xᵢ‖² for every row (scikit-learn's `row_norms(squared=True)`).
fn squared_norms(x: Embeddings<'_>) -> Vec<f64> {
    (0..x.rows()).map(|i| dot(x.row(i), x.row(i))).collect()
}

/// The rows `rows` of `x`, one after another.
fn gather(x: Embeddings<'_>, rows: &[usize]) -> Vec<f64> {
    rows.iter().flat_map(|&i| x.row(i)).copied().collect()
}

/// scikit-learn's `euclidean_distances(squared=True)` entry of rows a and b from their product
/// `ab` and squared norms: max((−2·a·b + ‖a‖²) + ‖b‖², 0).
fn squared_distance(ab: f64, aa: f64, bb: f64) -> f64 {
    clip(-2.0 * ab + aa + bb)
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

    /// A reproducible sample of `rows × dims` values in [−0.5, 0.5).
    fn values(rows: usize, dims: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..rows * dims)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    /// The kernel entry k(a, b) as Evidently forms it, from a plain dot product.
    fn naive_kernel(a: &[f64], b: &[f64], gamma: f64) -> f64 {
        (clip(-2.0 * dot(a, b) + dot(a, a) + dot(b, b)) * -gamma).exp()
    }

    #[test]
    fn statistic_matches_the_whole_kernel() {
        // Sides off the block size, so that tiles are partial and blocks of x and y meet.
        let (m, n, dims) = (70, 131, 6);
        let (xv, yv) = (values(m, dims, 1), values(n, dims, 2));
        let (x, y) = (Embeddings::new(&xv, dims).unwrap(), Embeddings::new(&yv, dims).unwrap());
        let gamma = 0.7;
        let block = |a: Embeddings<'_>, b: Embeddings<'_>, same: bool| {
            let entries: Vec<f64> = (0..a.rows())
                .flat_map(|i| (0..b.rows()).map(move |j| (i, j)))
                .filter(|&(i, j)| !same || i != j)
                .map(|(i, j)| naive_kernel(a.row(i), b.row(j), gamma))
                .collect();
            np_sum(&entries)
        };
        let want = unbiased(m as f64, n as f64, block(x, x, true), block(y, y, true), block(x, y, false));
        let got = statistic(x, &squared_norms(x), y, &squared_norms(y), gamma);
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
        assert!(statistic(x, &squared_norms(x), y, &squared_norms(y), f64::INFINITY).is_nan());
    }

    #[test]
    fn bootstrap_matches_gathered_blocks() {
        let (m, n, dims) = (75, 40, 5);
        let xv = values(m, dims, 3);
        let x = Embeddings::new(&xv, dims).unwrap();
        let gamma = 1.3;
        let got = bootstrap(x, &squared_norms(x), gamma, n).unwrap();
        let (x_size, y_size) = (m * m / (m + n), m * n / (m + n));
        for (round, got) in got.into_iter().enumerate() {
            // Evidently's way: the kernel at the drawn rows, each block summed whole.
            let mut rng = Mt19937::new(round as u32);
            let xi: Vec<usize> = (0..x_size).map(|_| rng.interval(m as u64 - 1) as usize).collect();
            let yi: Vec<usize> = (0..y_size).map(|_| rng.interval(m as u64 - 1) as usize).collect();
            let k = |i: usize, j: usize| if i == j { 1.0 } else { naive_kernel(x.row(i), x.row(j), gamma) };
            let sum = |a: &[usize], b: &[usize]| {
                np_sum(&a.iter().flat_map(|&i| b.iter().map(move |&j| k(i, j))).collect::<Vec<_>>())
            };
            let want = unbiased(
                x_size as f64,
                y_size as f64,
                sum(&xi, &xi) - x_size as f64,
                sum(&yi, &yi) - y_size as f64,
                sum(&xi, &yi),
            );
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1e-3), "round {round}: {got} vs {want}");
        }
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

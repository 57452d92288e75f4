//! Evidently's `distance` method (`DistanceDriftMethod`): a distance between the mean
//! reference embedding and the mean current embedding.

use super::{EmbeddingDrift, Embeddings, N_BOOTSTRAP, column_means, dot, np_percentile, with_pca};
use crate::stats::mt19937::Mt19937;
use crate::stats::{Error, Result, np_sum};

/// The distances Evidently offers (scipy's, on the two mean vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distance {
    /// `scipy.spatial.distance.euclidean`: ‖u − v‖₂.
    #[default]
    Euclidean,
    /// `scipy.spatial.distance.cosine`: 1 − u·v / √(u·u · v·v), clipped to [0, 2].
    Cosine,
    /// `scipy.spatial.distance.cityblock`: Σ|u − v|.
    Cityblock,
    /// `scipy.spatial.distance.chebyshev`: max|u − v|.
    Chebyshev,
}

impl Distance {
    /// Evidently's name ("euclidean", "cosine", "cityblock", "chebyshev").
    pub fn name(self) -> &'static str {
        match self {
            Distance::Euclidean => "euclidean",
            Distance::Cosine => "cosine",
            Distance::Cityblock => "cityblock",
            Distance::Chebyshev => "chebyshev",
        }
    }

    /// The distance named `name`.
    pub fn from_name(name: &str) -> Option<Distance> {
        [Distance::Euclidean, Distance::Cosine, Distance::Cityblock, Distance::Chebyshev]
            .into_iter()
            .find(|d| d.name() == name)
    }

    /// The distance between `u` and `v`, as scipy computes it. Euclidean refuses non-finite
    /// input (scipy's `norm` checks), the others return NaN.
    ///
    /// scipy's Euclidean norm is BLAS `nrm2`, which accumulates in extended precision; the sum
    /// of squares here is compensated (Neumaier), so both are within an ulp of the exact norm.
    /// Cosine uses BLAS dot products, whose order of additions differs from the plain sums
    /// here by rounding only.
    pub fn between(self, u: &[f64], v: &[f64]) -> Result<f64> {
        let diff = u.iter().zip(v).map(|(a, b)| a - b);
        match self {
            Distance::Euclidean => {
                if u.iter().chain(v).any(|x| !x.is_finite()) {
                    return Err(Error::Invalid("array must not contain infs or NaNs".into()));
                }
                let (mut sum, mut compensation) = (0.0f64, 0.0f64);
                for d in diff {
                    let sq = d * d;
                    let t = sum + sq;
                    compensation += if sum.abs() >= sq { (sum - t) + sq } else { (sq - t) + sum };
                    sum = t;
                }
                Ok((sum + compensation).sqrt())
            }
            Distance::Cosine => {
                let (uv, uu, vv) = (dot(u, v), dot(u, u), dot(v, v));
                let d = 1.0 - uv / (uu * vv).sqrt();
                Ok(if d.is_nan() { d } else { d.clamp(0.0, 2.0) })
            }
            Distance::Cityblock => Ok(np_sum(&diff.map(f64::abs).collect::<Vec<_>>())),
            Distance::Chebyshev => {
                // Python's max() over the array: a NaN first stays, a NaN later is skipped.
                let mut it = diff.map(f64::abs);
                let first = it.next().unwrap_or(f64::NAN);
                Ok(it.fold(first, |m, x| if x > m { x } else { m }))
            }
        }
    }
}

/// Evidently's `distance(...)` options, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DistanceOptions {
    /// The distance between the means (default Euclidean).
    pub dist: Distance,
    /// Drift when the distance exceeds this (default 0.2); unused with `bootstrap`.
    pub threshold: f64,
    /// Compare with the bootstrapped `quantile_probability` quantile of distances between
    /// resampled reference means instead of `threshold` (default false).
    pub bootstrap: bool,
    /// The quantile of the bootstrap (default 0.95).
    pub quantile_probability: f64,
    /// Project both sides on the reference's first principal components first (default none).
    pub pca_components: Option<usize>,
}

impl Default for DistanceOptions {
    fn default() -> Self {
        DistanceOptions {
            dist: Distance::Euclidean,
            threshold: 0.2,
            bootstrap: false,
            quantile_probability: 0.95,
            pca_components: None,
        }
    }
}

/// Evidently's `DistanceDriftMethod`: the distance between the column means of `reference`
/// and `current`; drift when it exceeds `threshold`.
///
/// With `bootstrap`, the threshold is instead `np.percentile` (linear) at
/// `100·quantile_probability` of 100 distances, round i drawing with
/// `np.random.seed(i); np.random.choice(n_ref, ⌊n_ref²/(n_ref+n_cur)⌋)` and
/// `np.random.choice(n_ref, ⌊n_cur·n_ref/(n_ref+n_cur)⌋)` two resamples of the *reference*
/// (Evidently's choice) and measuring the distance between their means. Those draws are
/// replayed, so the threshold is Evidently's. When a resample is empty (e.g. a single current
/// row) its mean is NaN: Euclidean then fails as scipy does; the other distances give a NaN
/// threshold and no drift.
///
/// Cost: O((n_ref + n_cur)·d), plus O(n_ref·d) per bootstrap round.
pub fn distance(
    reference: Embeddings<'_>,
    current: Embeddings<'_>,
    options: &DistanceOptions,
) -> Result<EmbeddingDrift> {
    with_pca(reference, current, options.pca_components, |reference, current| {
        let (nr, nc) = (reference.rows(), current.rows());
        let score = options.dist.between(&column_means(reference, 0..nr), &column_means(current, 0..nc))?;
        if !options.bootstrap {
            return Ok(EmbeddingDrift { score, drifted: score > options.threshold, threshold: options.threshold });
        }
        // int(a / b) of Python ints is ⌊a/b⌋ while a < 2⁵³ (beyond, the float quotient may
        // round up to the next integer); u128 keeps the products exact.
        let total = (nr + nc) as u128;
        let b_ref = ((nr as u128 * nr as u128) / total) as usize;
        let b_cur = ((nc as u128 * nr as u128) / total) as usize;
        let mut distances = Vec::with_capacity(N_BOOTSTRAP);
        for i in 0..N_BOOTSTRAP {
            let mut rng = Mt19937::new(i as u32);
            let a: Vec<usize> = (0..b_ref).map(|_| rng.interval(nr as u64 - 1) as usize).collect();
            let b: Vec<usize> = (0..b_cur).map(|_| rng.interval(nr as u64 - 1) as usize).collect();
            let ma = column_means(reference, a.into_iter());
            let mb = column_means(reference, b.into_iter());
            distances.push(options.dist.between(&ma, &mb)?);
        }
        let threshold = np_percentile(distances, 100.0 * options.quantile_probability)?;
        Ok(EmbeddingDrift { score, drifted: score > threshold, threshold })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_by_hand() {
        let (u, v) = ([1.0, 2.0, 2.0], [1.0, 0.0, 0.0]);
        assert_eq!(Distance::Euclidean.between(&u, &v).unwrap(), 8f64.sqrt());
        assert_eq!(Distance::Cityblock.between(&u, &v).unwrap(), 4.0);
        assert_eq!(Distance::Chebyshev.between(&u, &v).unwrap(), 2.0);
        assert!((Distance::Cosine.between(&u, &v).unwrap() - (1.0 - 1.0 / 3.0)).abs() < 1e-15);
        assert!(Distance::Euclidean.between(&[f64::NAN], &[0.0]).is_err());
    }

    #[test]
    fn mean_shift_is_the_distance() {
        let r = [0.0, 0.0, 2.0, 0.0];
        let c = [3.0, 4.0, 3.0, 4.0];
        let (r, c) = (Embeddings::new(&r, 2).unwrap(), Embeddings::new(&c, 2).unwrap());
        let got = distance(r, c, &DistanceOptions::default()).unwrap();
        // Means (1, 0) and (3, 4): distance √20.
        assert_eq!(got, EmbeddingDrift { score: 20f64.sqrt(), drifted: true, threshold: 0.2 });
    }
}

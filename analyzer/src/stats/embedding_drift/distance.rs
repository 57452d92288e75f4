//! Evidently's `distance` method (`DistanceDriftMethod`): a distance between the mean
//! reference embedding and the mean current embedding.

use super::{EmbeddingDrift, Embeddings, N_BOOTSTRAP, column_means, dot, np_percentile, parallel_map, with_pca};
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
/// The two means are formed side by side, the 200 resamples' sums in one pass over the
/// reference, on all cores.
///
/// Cost: O((n_ref + n_cur)·d), plus O(n_ref·d) per bootstrap round.
pub fn distance(
    reference: Embeddings<'_>,
    current: Embeddings<'_>,
    options: &DistanceOptions,
) -> Result<EmbeddingDrift> {
    with_pca(reference, current, options.pca_components, |reference, current| {
        let (nr, nc) = (reference.rows(), current.rows());
        let means = parallel_map(2, |side| match side {
            0 => column_means(reference, 0..nr),
            _ => column_means(current, 0..nc),
        });
        let score = options.dist.between(&means[0], &means[1])?;
        if !options.bootstrap {
            return Ok(EmbeddingDrift { score, drifted: score > options.threshold, threshold: options.threshold });
        }
        // int(a / b) of Python ints is ⌊a/b⌋ while a < 2⁵³ (beyond, the float quotient may
        // round up to the next integer); u128 keeps the products exact.
        let total = (nr + nc) as u128;
        let b_ref = ((nr as u128 * nr as u128) / total) as usize;
        let b_cur = ((nc as u128 * nr as u128) / total) as usize;
        let means = resample_means(reference, [b_ref, b_cur]);
        let mut distances = Vec::with_capacity(N_BOOTSTRAP);
        for pair in means.chunks(2) {
            distances.push(options.dist.between(&pair[0], &pair[1])?);
        }
        let threshold = np_percentile(distances, 100.0 * options.quantile_probability)?;
        Ok(EmbeddingDrift { score, drifted: score > threshold, threshold })
    })
}

/// The column means of the reference's bootstrap resamples: round i (`np.random.seed(i)`)
/// draws `sizes[0]` rows, then `sizes[1]` rows, with replacement; mean 2i is the first
/// resample's, 2i + 1 the second's (NaN for an empty resample, as pandas').
///
/// Rather than gather 200 resamples of rows from all over the reference, each row is read once
/// and added to the sum of every resample that drew it, as often as it drew it: the sums are
/// pandas' up to the order of their terms (rows in reference order, not in draw order). The
/// rounds are split over the cores, each core replaying its rounds' draws and reading every row
/// for them.
///
/// Cost: O(N_BOOTSTRAP·(sizes[0] + sizes[1])·d) additions, one pass over the reference per core,
/// a byte per draw.
fn resample_means(reference: Embeddings<'_>, sizes: [usize; 2]) -> Vec<Vec<f64>> {
    const _: () = assert!(2 * N_BOOTSTRAP <= u8::MAX as usize + 1, "a resample's slot fits in a byte");
    let (nr, dims) = (reference.rows(), reference.dims());
    // Worker w takes the rounds w, w + workers, …: round r is its (r / workers)-th.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(N_BOOTSTRAP);
    let sums = parallel_map(workers, |worker| {
        let rounds: Vec<usize> = (worker..N_BOOTSTRAP).step_by(workers).collect();
        // Every draw as (row, slot 2·k + sample for the k-th round), replayed twice rather than
        // held: to count, then to place.
        let draws = |visit: &mut dyn FnMut(usize, u8)| {
            for (k, &round) in rounds.iter().enumerate() {
                let mut rng = Mt19937::new(round as u32);
                for (sample, &size) in sizes.iter().enumerate() {
                    for _ in 0..size {
                        visit(rng.interval(nr as u64 - 1) as usize, (2 * k + sample) as u8);
                    }
                }
            }
        };
        // The slots that drew row i: drawn[start[i]..start[i + 1]], one entry per draw.
        let mut start = vec![0usize; nr + 1];
        draws(&mut |row, _| start[row + 1] += 1);
        for i in 0..nr {
            start[i + 1] += start[i];
        }
        let mut drawn = vec![0u8; start[nr]];
        let mut next = start.clone();
        draws(&mut |row, slot| {
            drawn[next[row]] = slot;
            next[row] += 1;
        });
        let mut sums = vec![0.0; 2 * rounds.len() * dims];
        for i in 0..nr {
            let row = reference.row(i);
            for &slot in &drawn[start[i]..start[i + 1]] {
                for (s, v) in sums[usize::from(slot) * dims..][..dims].iter_mut().zip(row) {
                    *s += v;
                }
            }
        }
        sums
    });
    (0..2 * N_BOOTSTRAP)
        .map(|resample| {
            let (round, sample) = (resample / 2, resample % 2);
            let slot = 2 * (round / workers) + sample;
            let count = sizes[sample] as f64;
            sums[round % workers][slot * dims..][..dims].iter().map(|s| s / count).collect()
        })
        .collect()
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
    fn resample_means_are_the_means_of_the_draws() {
        let values: Vec<f64> = (0..37 * 3).map(|i| f64::from(i).sin()).collect();
        let reference = Embeddings::new(&values, 3).unwrap();
        let means = resample_means(reference, [29, 0]);
        for (round, pair) in means.chunks(2).enumerate() {
            let mut rng = Mt19937::new(round as u32);
            let drawn: Vec<usize> = (0..29).map(|_| rng.interval(36) as usize).collect();
            // Terms of magnitude at most 1, summed in another order: equal to rounding.
            for (got, want) in pair[0].iter().zip(column_means(reference, drawn.into_iter())) {
                assert!((got - want).abs() <= 1e-15, "round {round}: {got} vs {want}");
            }
            assert!(pair[1].iter().all(|m| m.is_nan()), "an empty resample's mean is NaN");
        }
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

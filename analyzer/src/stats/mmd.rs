//! Empirical maximum mean discrepancy permutation test, as Evidently's `empirical_mmd`.

use super::mt19937::Mt19937;
use super::{Result, TooSmallExt};

/// Number of permutations Evidently draws.
pub const ITERATIONS: usize = 100;

/// Permutation p-value of Evidently 0.7's `_mmd_stattest`: an RBF kernel whose width is
/// √(½·median) of the reference's squared pairwise distances (numpy's "nearest" median; √½
/// when that is 0), the unbiased MMD² of reference vs current, and the share of 100 random
/// relabellings of the pooled sample with an MMD² at least as large.
///
/// Evidently draws the relabellings from numpy's global generator without seeding it; here
/// they come from numpy's legacy generator seeded with `seed`, so with seed 0 the p-value is
/// what Evidently gives after `np.random.seed(0)`. As an estimate of the exact permutation
/// p-value its sampling error is √(p(1 − p)/100) ≤ 0.05. Needs two values per sample.
/// Drift when p < threshold (default 0.1). Cost is O((n+m)²) time and memory.
pub fn mmd_pvalue(reference: &[f64], current: &[f64], seed: u32) -> Result<f64> {
    reference.at_least(2, "reference")?;
    current.at_least(2, "current")?;
    let (nx, ny) = (reference.len(), current.len());
    let n = nx + ny;
    let z: Vec<f64> = reference.iter().chain(current).copied().collect();
    // numpy: dist = b_j² − 2·(a_i·b_j) + a_i², with a the row sample.
    let sq = |a: f64, b: f64| b * b - 2.0 * (a * b) + a * a;
    let mut xx: Vec<f64> = Vec::with_capacity(nx * nx);
    for &a in reference {
        for &b in reference {
            xx.push(sq(a, b));
        }
    }
    let idx = ((nx * nx - 1) as f64 * 0.5).round_ties_even() as usize;
    let (_, median, _) = xx.select_nth_unstable_by(idx, f64::total_cmp);
    let mut sigma = (0.5 * *median).sqrt();
    if sigma == 0.0 {
        sigma = 0.5f64.sqrt();
    }
    let gamma = 1.0 / (2.0 * sigma * sigma);
    let mut k = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            // Rows and columns follow Evidently's blocks: kxy is rbf(x, y) and its transpose.
            let d = match (i < nx, j < nx) {
                (true, true) | (false, false) => sq(z[i], z[j]),
                (true, false) => sq(z[i], z[j]),
                (false, true) => sq(z[j], z[i]),
            };
            k[i * n + j] = (-gamma * d).exp();
        }
    }
    let stat = |perm: Option<&[usize]>| {
        let at = |i: usize| perm.map_or(i, |p| p[i]);
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let ri = at(i) * n;
            for j in 0..n {
                let v = k[ri + at(j)];
                match (i < nx, j < nx) {
                    (true, true) => sxx += v,
                    (false, false) => syy += v,
                    (false, true) => sxy += v,
                    (true, false) => {}
                }
            }
        }
        let a = 1.0 / (nx as f64 * (nx as f64 - 1.0));
        let b = 1.0 / (ny as f64 * (ny as f64 - 1.0));
        a * sxx + b * syy - 2.0 * (sxy / (nx * ny) as f64)
    };
    let observed = stat(None);
    let mut rng = Mt19937::new(seed);
    let mut hits = 0usize;
    for _ in 0..ITERATIONS {
        let perm = rng.permutation(n);
        if observed <= stat(Some(&perm)) {
            hits += 1;
        }
    }
    Ok(hits as f64 / ITERATIONS as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_samples_drift() {
        let a: Vec<f64> = (0..30).map(|i| f64::from(i) / 30.0).collect();
        let b: Vec<f64> = a.iter().map(|v| v + 5.0).collect();
        assert_eq!(mmd_pvalue(&a, &b, 0).unwrap(), 0.0);
    }
}

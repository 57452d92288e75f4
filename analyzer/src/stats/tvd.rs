//! Total variation distance permutation test, as Evidently's `TVD` stattest.

use super::mt19937::Mt19937;
use super::{Error, Result};

/// Number of permutations Evidently draws.
pub const ITERATIONS: usize = 1000;

/// TVD = ½ Σ |rᵢ/Σr − cᵢ/Σc| between two count vectors.
pub fn tvd(reference: &[u64], current: &[u64]) -> f64 {
    let sr: u64 = reference.iter().sum();
    let sc: u64 = current.iter().sum();
    let mut s = 0.0;
    for (&r, &c) in reference.iter().zip(current) {
        s += (r as f64 / sr as f64 - c as f64 / sc as f64).abs();
    }
    0.5 * s
}

/// Permutation p-value of Evidently 0.7's `_tvd_stattest`: the share of 1000 random splits of
/// the pooled sample (reference size kept) whose TVD is at least the observed one.
///
/// Inputs are the category code of every value, in the order of the data. The splits replay
/// numpy's legacy generator seeded with `seed`, the draws `np.random.seed(0)` followed by
/// `np.random.choice(pooled, n_ref, replace=False)` make, so with seed 0 the p-value equals
/// Evidently's except where a permuted TVD ties the observed one to within rounding (sums in a
/// different order). Its sampling error as an estimate of the exact permutation p-value is
/// √(p(1 − p)/1000) ≤ 0.016. Drift when p < threshold (default 0.1).
pub fn tvd_pvalue(reference: &[u32], current: &[u32], seed: u32) -> Result<f64> {
    if reference.is_empty() {
        return Err(Error::Empty("reference"));
    }
    if current.is_empty() {
        return Err(Error::Empty("current"));
    }
    let k = reference.iter().chain(current).copied().max().unwrap_or(0) as usize + 1;
    let count = |codes: &mut dyn Iterator<Item = u32>| {
        let mut c = vec![0u64; k];
        for v in codes {
            c[v as usize] += 1;
        }
        c
    };
    let rc = count(&mut reference.iter().copied());
    let cc = count(&mut current.iter().copied());
    let total: Vec<u64> = rc.iter().zip(&cc).map(|(a, b)| a + b).collect();
    let observed = tvd(&rc, &cc);
    let pooled: Vec<u32> = reference.iter().chain(current).copied().collect();
    let mut rng = Mt19937::new(seed);
    let mut hits = 0usize;
    for _ in 0..ITERATIONS {
        let perm = rng.permutation(pooled.len());
        let nr = count(&mut perm[..reference.len()].iter().map(|&i| pooled[i]));
        let nc: Vec<u64> = total.iter().zip(&nr).map(|(t, r)| t - r).collect();
        if observed <= tvd(&nr, &nc).abs() {
            hits += 1;
        }
    }
    Ok(hits as f64 / ITERATIONS as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_hand_checked() {
        assert_eq!(tvd(&[1, 1], &[1, 1]), 0.0);
        assert_eq!(tvd(&[2, 0], &[0, 2]), 1.0);
    }

    #[test]
    fn identical_samples_never_drift() {
        let codes: Vec<u32> = (0..40).map(|i| i % 3).collect();
        assert_eq!(tvd_pvalue(&codes, &codes, 0).unwrap(), 1.0);
    }
}

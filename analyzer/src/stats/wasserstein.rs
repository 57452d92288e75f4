//! Wasserstein-1 distance (plain and Evidently's normed form) and the CDF distances behind it.

use super::{Result, non_empty, np_std, np_sum_by, sorted};

/// scipy's `_cdf_distance(p, u, v)` without weights: ∫|U(x) − V(x)|ᵖ dx over the merged
/// sample, for p = 1 (as is) or p = 2 (square-rooted), in scipy's order of operations.
pub fn cdf_distance(p: u32, reference: &[f64], current: &[f64]) -> Result<f64> {
    non_empty(reference, current)?;
    cdf_distance_sorted(p, &sorted(reference), &sorted(current))
}

/// [`cdf_distance`] of samples already sorted ascending (`total_cmp` order), for callers that
/// sort a column once and share it (summaries, several tests).
pub fn cdf_distance_sorted(p: u32, u: &[f64], v: &[f64]) -> Result<f64> {
    non_empty(u, v)?;
    // scipy sorts the concatenation and binary-searches each value in both samples; merging
    // the two sorted samples and walking them with two cursors yields the very same values and
    // counts in linear time, so the sum (numpy's pairwise order over the same terms) is unchanged.
    // The merged sample and the terms are streamed into the sum, never held.
    let (mut i, mut j) = (0, 0);
    let mut merged = || {
        if j == v.len() || (i < u.len() && u[i].total_cmp(&v[j]).is_le()) {
            i += 1;
            u[i - 1]
        } else {
            j += 1;
            v[j - 1]
        }
    };
    let mut x = merged();
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut cu, mut cv) = (0, 0);
    let s = np_sum_by(u.len() + v.len() - 1, |_| {
        let next = merged();
        let delta = next - x;
        // searchsorted(side="right"): how many values are ≤ x.
        while cu < u.len() && u[cu] <= x {
            cu += 1;
        }
        while cv < v.len() && v[cv] <= x {
            cv += 1;
        }
        x = next;
        let d = (cu as f64 / nu - cv as f64 / nv).abs();
        if p == 1 { d * delta } else { d * d * delta }
    });
    Ok(if p == 1 { s } else { s.sqrt() })
}

/// `scipy.stats.wasserstein_distance(reference, current)`.
pub fn wasserstein_distance(reference: &[f64], current: &[f64]) -> Result<f64> {
    cdf_distance(1, reference, current)
}

/// Evidently's normed Wasserstein distance:
/// `wasserstein_distance(ref, cur) / max(std(ref, ddof=0), 0.001)`.
///
/// Drift when ≥ threshold (default 0.1).
pub fn wasserstein(reference: &[f64], current: &[f64]) -> Result<f64> {
    let d = wasserstein_distance(reference, current)?;
    let norm = np_std(reference).max(0.001);
    Ok(d / norm)
}

/// [`wasserstein`] with both samples also given sorted: `reference` in data order (the
/// standard deviation's pairwise sum follows numpy's order over it), `sorted_reference` and
/// `sorted_current` the same values sorted. Same number, two sorts fewer.
pub fn wasserstein_sorted(reference: &[f64], sorted_reference: &[f64], sorted_current: &[f64]) -> Result<f64> {
    let d = cdf_distance_sorted(1, sorted_reference, sorted_current)?;
    let norm = np_std(reference).max(0.001);
    Ok(d / norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_by_one() {
        // Shifting a sample by 1 moves all mass by 1.
        let a = [0.0, 1.0, 2.0, 3.0];
        let b = [1.0, 2.0, 3.0, 4.0];
        assert!((wasserstein_distance(&a, &b).unwrap() - 1.0).abs() < 1e-15);
        let normed = wasserstein(&a, &b).unwrap();
        assert!((normed - 1.0 / 1.118033988749895).abs() < 1e-14);
    }

    #[test]
    fn constant_reference_uses_floor() {
        let v = wasserstein(&[2.0, 2.0], &[3.0]).unwrap();
        assert!((v - 1000.0).abs() < 1e-9);
    }
}

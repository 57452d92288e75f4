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
    //
    // scipy's term k is |U(x_k) − V(x_k)| · (x_{k+1} − x_k), where U(x) counts the values ≤ x
    // (searchsorted, side="right"). When x_{k+1} > x_k, the merge has consumed exactly the values
    // ≤ x_k, so the counts are the cursors' positions; when x_{k+1} = x_k the term is 0 whatever
    // the counts. The cursors' positions therefore give every term bit for bit, without a search.
    // The merge picks its side without a branch (the two sides interleave unpredictably).
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    // Takes the smaller head (the reference's on ties, as a stable sort of the concatenation).
    let next = |i: &mut usize, j: &mut usize| {
        let a = u.get(*i).copied().unwrap_or(f64::INFINITY);
        let b = v.get(*j).copied().unwrap_or(f64::INFINITY);
        let take_u = *j == v.len() || (*i < u.len() && a.total_cmp(&b).is_le());
        *i += usize::from(take_u);
        *j += usize::from(!take_u);
        if take_u { a } else { b }
    };
    let mut x = next(&mut i, &mut j);
    let s = np_sum_by(u.len() + v.len() - 1, |_| {
        let d = (i as f64 / nu - j as f64 / nv).abs();
        let following = next(&mut i, &mut j);
        let delta = following - x;
        x = following;
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

    /// scipy's `_cdf_distance` step by step: sort the concatenation, search each value in both
    /// samples, and sum the terms in numpy's pairwise order.
    fn scipy_order(p: u32, u: &[f64], v: &[f64]) -> f64 {
        let (u, v) = (sorted(u), sorted(v));
        let all = sorted(&[u.as_slice(), v.as_slice()].concat());
        let right = |s: &[f64], x: f64| s.partition_point(|y| *y <= x) as f64 / s.len() as f64;
        let terms: Vec<f64> = all
            .windows(2)
            .map(|w| {
                let d = (right(&u, w[0]) - right(&v, w[0])).abs();
                if p == 1 { d * (w[1] - w[0]) } else { d * d * (w[1] - w[0]) }
            })
            .collect();
        let s = np_sum_by(terms.len(), |k| terms[k]);
        if p == 1 { s } else { s.sqrt() }
    }

    #[test]
    fn the_merge_gives_scipys_terms_bit_for_bit() {
        let mut rng = crate::stats::mt19937::Mt19937::new(7);
        let mut cases: Vec<(Vec<f64>, Vec<f64>)> = vec![
            (vec![0.0], vec![0.0]),
            (vec![-0.0, 0.0, 0.0], vec![0.0, -0.0]),
            (vec![1.0, 1.0, 1.0], vec![1.0, 2.0]),
            (vec![3.0], vec![1.0, 2.0, 3.0, 3.0, 4.0]),
            (vec![-1e300, 1e300], vec![0.0, 1e-300]),
        ];
        for n in [2usize, 9, 130, 1000, 5000] {
            // Heavy ties (small integers) and continuous values, of unequal lengths.
            let ties = |rng: &mut crate::stats::mt19937::Mt19937, n: usize| {
                (0..n).map(|_| (rng.next_f64() * 7.0).floor() - 3.0).collect::<Vec<f64>>()
            };
            let smooth = |rng: &mut crate::stats::mt19937::Mt19937, n: usize| {
                (0..n).map(|_| rng.next_f64() * 10.0 - 2.0).collect::<Vec<f64>>()
            };
            cases.push((ties(&mut rng, n), ties(&mut rng, n / 2 + 1)));
            cases.push((smooth(&mut rng, n), smooth(&mut rng, 2 * n)));
            cases.push((ties(&mut rng, n), smooth(&mut rng, n)));
        }
        for (u, v) in &cases {
            for p in [1, 2] {
                let ours = cdf_distance(p, u, v).unwrap();
                let theirs = scipy_order(p, u, v);
                assert_eq!(ours.to_bits(), theirs.to_bits(), "p={p} u={} v={}: {ours} vs {theirs}", u.len(), v.len());
            }
        }
    }

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

//! Binning shared by PSI, KL and Jensen-Shannon, as Evidently's `get_binned_data`.
//!
//! A numerical column whose reference has more than 20 distinct values is cut into numpy's
//! `histogram_bin_edges(concat(reference, current), bins="sturges")`: equal-width bins from the
//! smallest to the largest value, the last bin closed. Every other column gets one bin per
//! distinct value of the union. Shares are counts divided by the sample's length.

use super::{Error, Result};

/// Edges of numpy's `histogram_bin_edges(concat(reference, current), bins="sturges")`.
///
/// `integer` says the column's dtype is an integer type: numpy then floors the bin width at 1.
/// The edges are computed as `np.linspace` does (`start + i·step`, the last edge set to the
/// maximum exactly), so they agree bit for bit.
pub fn sturges_edges(reference: &[f64], current: &[f64], integer: bool) -> Result<Vec<f64>> {
    let n = reference.len() + current.len();
    if n == 0 {
        return Err(Error::Empty("combined"));
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for side in [reference, current] {
        for &v in side {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    sturges_edges_over(lo, hi, n, integer)
}

/// [`sturges_edges`] from the values' range and count, for callers that know them (sorted data).
pub fn sturges_edges_over(lo: f64, hi: f64, n: usize, integer: bool) -> Result<Vec<f64>> {
    if n == 0 {
        return Err(Error::Empty("combined"));
    }
    if !lo.is_finite() || !hi.is_finite() {
        return Err(Error::Invalid("bin range is not finite".into()));
    }
    let ptp = hi - lo;
    let (first, last) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let mut width = ptp / ((n as f64).log2() + 1.0);
    let n_bins = if width != 0.0 {
        if integer && width < 1.0 {
            width = 1.0;
        }
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    Ok(linspace(first, last, n_bins + 1))
}

/// `np.linspace(start, stop, num, endpoint=True)` in numpy's order of operations.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = if step == 0.0 {
        (0..num).map(|i| i as f64 / div * delta + start).collect()
    } else {
        (0..num).map(|i| i as f64 * step + start).collect()
    };
    y[num - 1] = stop;
    y
}

/// Counts of `values` in bins `[e_i, e_{i+1})`, the last bin closed, as `np.histogram` with
/// explicit edges. Values outside the edges are not counted.
pub fn histogram(values: &[f64], edges: &[f64]) -> Vec<u64> {
    if edges.len() < 2 {
        return Vec::new();
    }
    let sorted = super::sorted(values);
    let last = edges.len() - 1;
    let cum: Vec<usize> = edges.iter().enumerate().map(|(i, &e)| super::searchsorted(&sorted, e, i == last)).collect();
    cum.windows(2).map(|w| (w[1] - w[0]) as u64).collect()
}

/// Distinct values of the union of two numerical samples (sorted, −0.0 folded into 0.0), with
/// each sample's count per value: the categories of a numerical column treated per value.
pub fn value_counts(reference: &[f64], current: &[f64]) -> (Vec<f64>, Vec<u64>, Vec<u64>) {
    let r = super::sorted(reference);
    let c = super::sorted(current);
    let (mut keys, mut rc, mut cc) = (Vec::new(), Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < r.len() || j < c.len() {
        // `+ 0.0` folds −0.0 into 0.0, as pandas hashes them alike.
        let next = match (r.get(i), c.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let mut nr = 0;
        while i < r.len() && r[i] == next {
            nr += 1;
            i += 1;
        }
        let mut nc = 0;
        while j < c.len() && c[j] == next {
            nc += 1;
            j += 1;
        }
        keys.push(next + 0.0);
        rc.push(nr);
        cc.push(nc);
    }
    (keys, rc, cc)
}

/// Number of distinct values in a sample (`pandas.Series.nunique()`).
pub fn n_unique(values: &[f64]) -> usize {
    n_unique_sorted(&super::sorted(values))
}

/// [`n_unique`] of values already sorted ascending.
pub fn n_unique_sorted(s: &[f64]) -> usize {
    let mut n = 0;
    for (i, v) in s.iter().enumerate() {
        if i == 0 || *v != s[i - 1] {
            n += 1;
        }
    }
    n
}

/// Shares `count / total` of each bin.
pub fn shares(counts: &[u64], total: usize) -> Vec<f64> {
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

/// Evidently's zero handling for PSI and KL, in place: with `m` the smallest non-zero share,
/// every zero becomes `m / 10⁶` if `m ≤ 0.0001`, else `0.0001`. No renormalising follows.
pub fn fill_zeros(shares: &mut [f64]) {
    let m = shares.iter().copied().filter(|&s| s != 0.0).fold(f64::INFINITY, f64::min);
    if !m.is_finite() {
        return;
    }
    let fill = if m <= 0.0001 { m / 1e6 } else { 0.0001 };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = fill;
    }
}

/// Binned shares of a numerical column as Evidently's `get_binned_data` computes them:
/// Sturges histogram when the reference has more than 20 distinct values, one bin per distinct
/// value of the union otherwise. `fill` applies [`fill_zeros`] to both arrays.
pub fn numerical_shares(reference: &[f64], current: &[f64], integer: bool, fill: bool) -> Result<(Vec<f64>, Vec<f64>)> {
    super::non_empty(reference, current)?;
    let (rc, cc) = if n_unique(reference) > 20 {
        let edges = sturges_edges(reference, current, integer)?;
        (histogram(reference, &edges), histogram(current, &edges))
    } else {
        let (_, rc, cc) = value_counts(reference, current);
        (rc, cc)
    };
    Ok(count_shares(&rc, &cc, reference.len(), current.len(), fill))
}

/// Shares of aligned category counts over each sample's length, optionally zero-filled.
pub fn count_shares(
    reference: &[u64],
    current: &[u64],
    n_reference: usize,
    n_current: usize,
    fill: bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut r = shares(reference, n_reference);
    let mut c = shares(current, n_current);
    if fill {
        fill_zeros(&mut r);
        fill_zeros(&mut c);
    }
    (r, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sturges_matches_numpy() {
        // np.histogram_bin_edges(np.arange(10.0), bins="sturges") has 5 bins: ceil(log2 10 + 1).
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let e = sturges_edges(&x, &[], false).unwrap();
        assert_eq!(e, vec![0.0, 1.8, 3.6, 5.4, 7.2, 9.0]);
        let c = histogram(&x, &e);
        assert_eq!(c, vec![2, 2, 2, 2, 2]);
    }

    #[test]
    fn integer_width_floor() {
        // 100 integers spanning 0..=4: width 4/7.64 < 1 becomes 1, so 4 bins.
        let x: Vec<f64> = (0..100).map(|i| f64::from(i % 5)).collect();
        assert_eq!(sturges_edges(&x, &[], true).unwrap().len(), 5);
        assert_eq!(sturges_edges(&x, &[], false).unwrap().len(), 9);
    }

    #[test]
    fn zero_fill_rule() {
        let mut s = vec![0.5, 0.0, 0.5];
        fill_zeros(&mut s);
        assert_eq!(s, vec![0.5, 0.0001, 0.5]);
        let mut s = vec![0.00005, 0.0, 0.99995];
        fill_zeros(&mut s);
        assert_eq!(s[1], 0.00005 / 1e6);
    }

    #[test]
    fn value_counts_union() {
        let (k, r, c) = value_counts(&[1.0, 1.0, -0.0], &[2.0, 0.0]);
        assert_eq!(k, vec![0.0, 1.0, 2.0]);
        assert_eq!(r, vec![1, 2, 0]);
        assert_eq!(c, vec![1, 0, 1]);
    }
}

//! Two-sample Kolmogorov-Smirnov test, as `scipy.stats.ks_2samp(method="auto")`.

mod kolmogn;

use super::{Result, non_empty, sorted};

/// Statistic and p-value of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// D = sup |F_ref − F_cur|, rounded to a multiple of 1/lcm(n₁, n₂) when the exact path ran.
    pub statistic: f64,
    /// Two-sided p-value.
    pub pvalue: f64,
    /// Whether the exact distribution was used (else Smirnov's asymptotic one).
    pub exact: bool,
}

/// Above this sample size `method="auto"` stops trying the exact distribution (scipy's
/// `MAX_AUTO_N`).
const MAX_AUTO_N: usize = 10_000;

/// Two-sided two-sample KS test matching `scipy.stats.ks_2samp(reference, current)` with
/// `method="auto"`: exact when both samples have at most 10 000 values (Hodges' square method
/// for equal sizes, the "inside" lattice-path method of Viehmann otherwise), else
/// `kstwo.sf(D, round(n₁n₂/(n₁+n₂)))`. Evidently's `ks` stattest reports the p-value and
/// drifts when p ≤ threshold (default 0.05).
pub fn ks_2samp(reference: &[f64], current: &[f64]) -> Result<KsResult> {
    non_empty(reference, current)?;
    let d1 = sorted(reference);
    let d2 = sorted(current);
    let (n1, n2) = (d1.len(), d2.len());
    let d = statistic(&d1, &d2);
    let g = gcd(n1, n2);
    if n1.max(n2) <= MAX_AUTO_N
        && let Some((d, p)) = attempt_exact(n1, n2, g, d)
    {
        return Ok(KsResult { statistic: d, pvalue: p.clamp(0.0, 1.0), exact: true });
    }
    let (m, n) = if n1 >= n2 { (n1 as f64, n2 as f64) } else { (n2 as f64, n1 as f64) };
    let en = m * n / (m + n);
    let p = kolmogn::kolmogn_sf(en.round_ties_even() as u64, d);
    Ok(KsResult { statistic: d, pvalue: p.clamp(0.0, 1.0), exact: false })
}

/// max(maxS, minS) of scipy: the largest signed gap of `cdf1 − cdf2` evaluated at every value
/// of both samples, each CDF a float division as numpy computes it.
fn statistic(d1: &[f64], d2: &[f64]) -> f64 {
    let (n1, n2) = (d1.len() as f64, d2.len() as f64);
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
    for &x in d1.iter().chain(d2) {
        let c1 = super::searchsorted(d1, x, true) as f64 / n1;
        let c2 = super::searchsorted(d2, x, true) as f64 / n2;
        let diff = c1 - c2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    if min_s > max_s { min_s } else { max_s }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// scipy's `_attempt_exact_2kssamp` for the two-sided alternative: `None` when the result is
/// not a probability (scipy then falls back to the asymptotic distribution).
fn attempt_exact(n1: usize, n2: usize, g: usize, d: f64) -> Option<(f64, f64)> {
    let lcm = (n1 / g) as f64 * n2 as f64;
    let h = (d * lcm).round_ties_even();
    let d = h / lcm;
    if h == 0.0 {
        return Some((d, 1.0));
    }
    let h = h as u64;
    let prob = if n1 == n2 {
        prob_outside_square(n1 as u64, h)
    } else {
        outer_prob_inside_method(n1 as u64, n2 as u64, g as u64, h)
    };
    if prob.is_finite() && (0.0..=1.0).contains(&prob) { Some((d, prob)) } else { None }
}

/// scipy's `_compute_prob_outside_square(n, h)`.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (nf, hf) = (n as f64, h as f64);
    while k >= 0 {
        let kf = k as f64;
        let mut p1 = 1.0;
        for j in 0..h {
            let jf = j as f64;
            p1 = (nf - kf * hf - jf) * p1 / (nf + kf * hf + jf + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// scipy's `_compute_outer_prob_inside_method(m, n, g, h)`: 1 − P(paths stay strictly inside).
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = m / g;
    let ng = n / g;
    let (mgf, ngf, hf) = (mg as f64, ng as f64, h as f64);
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((hf / mgf).ceil() as i64).min(n as i64 + 1);
    let mut curlen = maxj - minj;
    let len_a = ((2 * maxj + 2) as usize).min(n as usize + 1);
    let mut a = vec![1.0f64; len_a];
    for v in a.iter_mut().take(maxj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        let fi = i as f64;
        minj = ((((ngf * fi - hf) / mgf).floor() as i64) + 1).max(0);
        minj = minj.min(n as i64);
        maxj = (((ngf * fi + hf) / mgf).ceil() as i64).min(n as i64 + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = (jj + minj) as f64;
            val = (a[(jj + minj - lastminj) as usize] * fi + val * j) / (fi + j);
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            for v in &mut a[start..end] {
                *v = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples() {
        let x = [1.0, 2.0, 3.0];
        let r = ks_2samp(&x, &x).unwrap();
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.pvalue, 1.0);
    }

    #[test]
    fn disjoint_equal_sizes() {
        // All of one sample below the other: D = 1, p = 2 / C(2n, n); n = 3 gives 0.1.
        let r = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(r.statistic, 1.0);
        assert!((r.pvalue - 0.1).abs() < 1e-15);
    }

    #[test]
    fn disjoint_unequal_sizes() {
        // n = 2, m = 3: p = 2 / C(5, 2) = 0.2.
        let r = ks_2samp(&[1.0, 2.0], &[4.0, 5.0, 6.0]).unwrap();
        assert!((r.pvalue - 0.2).abs() < 1e-15, "{}", r.pvalue);
    }

    #[test]
    fn empty_is_error() {
        assert!(ks_2samp(&[], &[1.0]).is_err());
    }
}

//! Mann-Whitney U test, as Evidently's `mannw` stattest.

use super::special::ndtr;
use super::{Result, non_empty, np_sum_by, rank_average};

/// p-value of `scipy.stats.mannwhitneyu(x=reference, y=current, alternative="less")` with
/// `method="auto"`, as Evidently 0.7 `_mannwhitneyu_rank`.
///
/// U₁ = R₁ − n₁(n₁+1)/2 from average ranks; the "less" p-value is the survival function of
/// U₂ = n₁n₂ − U₁. Exact (the null distribution counted by scipy's recurrence) when either
/// sample has at most 8 values and there are no ties; otherwise the normal approximation with
/// tie correction and a continuity correction of ½. Drift when p < threshold (default 0.05).
pub fn mannwhitneyu_less(reference: &[f64], current: &[f64]) -> Result<f64> {
    non_empty(reference, current)?;
    let (n1, n2) = (reference.len(), current.len());
    let all: Vec<f64> = reference.iter().chain(current).copied().collect();
    let (ranks, ties) = rank_average(&all);
    let r1 = np_sum_by(n1, |i| ranks[i]);
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u = n1f * n2f - u1;
    let has_ties = ties.iter().any(|&t| t > 1);
    let p = if (n1 > 8 && n2 > 8) || has_ties {
        let mu = n1f * n2f / 2.0;
        let n = n1f + n2f;
        let tie_term = np_sum_by(ties.len(), |i| {
            let t = ties[i] as f64;
            t * t * t - t
        });
        let s = (n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
        let z = (u - mu - 0.5) / s;
        ndtr(-z)
    } else {
        exact_sf(n1, n2, u as i64)
    };
    Ok(p.clamp(0.0, 1.0))
}

/// scipy's `_MWU.sf(k)`: counts of U values by the recurrence over divisor sums.
fn exact_sf(n1: usize, n2: usize, k: i64) -> f64 {
    let (n1, n2) = (n1.min(n2), n1.max(n2));
    let total = binom(n1 + n2, n1);
    let kc = (n1 * n2) as i64 - k;
    let freqs = |maxu: usize| -> Vec<f64> {
        let mut s = vec![0i64; maxu + 1];
        for d in 1..=n1 {
            let mut i = d;
            while i <= maxu {
                s[i] += d as i64;
                i += d;
            }
        }
        for d in (n2 + 1)..=(n2 + n1) {
            let mut i = d;
            while i <= maxu {
                s[i] -= d as i64;
                i += d;
            }
        }
        let mut conf = vec![0.0f64; maxu + 1];
        let mut is_uint = true;
        conf[0] = 1.0;
        for u in 1..=maxu {
            let mut dot = 0.0;
            for (j, c) in conf[..u].iter().enumerate() {
                dot += c * s[u - j] as f64;
            }
            let v = dot / u as f64;
            if is_uint && v > u64::MAX as f64 {
                is_uint = false;
            }
            conf[u] = if is_uint { v.trunc() } else { v };
        }
        conf.iter().map(|c| c / total).collect()
    };
    if k < kc {
        let k = k.max(0) as usize;
        let pmf = freqs(k);
        let cdf: f64 = pmf.iter().sum();
        1.0 - cdf + pmf[k]
    } else {
        let kc = kc.max(0) as usize;
        freqs(kc).iter().sum()
    }
}

fn binom(n: usize, k: usize) -> f64 {
    let mut r = 1.0;
    for i in 0..k {
        r = r * (n - i) as f64 / (i + 1) as f64;
    }
    r.round()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_extremes() {
        // Reference entirely above current: "less" finds no evidence, p = 1.
        let p = mannwhitneyu_less(&[10.0, 11.0, 12.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((p - 1.0).abs() < 1e-15);
        // Reference entirely below: p = 1 / C(6, 3) = 0.05.
        let p = mannwhitneyu_less(&[1.0, 2.0, 3.0], &[10.0, 11.0, 12.0]).unwrap();
        assert!((p - 0.05).abs() < 1e-15, "{p}");
    }
}

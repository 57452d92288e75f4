//! Two-sample Cramér-von Mises test, as Evidently's `cramer_von_mises` stattest.

use super::special::{bessel_k, ln_gamma};
use super::{Result, TooSmallExt, rank_average};
use std::collections::BTreeMap;
use std::f64::consts::PI;

/// Statistic and p-value of the two-sample Cramér-von Mises test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CvmResult {
    /// T = U/(mn(m+n)) − (4mn − 1)/(6(m+n)).
    pub statistic: f64,
    /// p-value.
    pub pvalue: f64,
}

/// Evidently 0.7's `_cvm_2samp(reference, current)` (a copy of scipy's
/// `cramervonmises_2samp`, method "auto"): exact when both samples have at most 20 values
/// (Xiao's counting of U over all arrangements), otherwise the normalised statistic against the
/// limiting distribution (Csörgő-Faraway series with K_¼, summed until a term is < 1e-7).
/// Needs at least two values per sample. Drift when p ≤ threshold (default 0.1).
pub fn cramervonmises_2samp(reference: &[f64], current: &[f64]) -> Result<CvmResult> {
    reference.at_least(2, "reference")?;
    current.at_least(2, "current")?;
    let (nx, ny) = (reference.len(), current.len());
    let mut xa = reference.to_vec();
    xa.sort_by(f64::total_cmp);
    let mut ya = current.to_vec();
    ya.sort_by(f64::total_cmp);
    let z: Vec<f64> = xa.iter().chain(&ya).copied().collect();
    let (r, _) = rank_average(&z);
    let (nxf, nyf) = (nx as f64, ny as f64);
    let mut u = nxf * super::np_sum_by(nx, |i| (r[i] - (i + 1) as f64).powi(2));
    u += nyf * super::np_sum_by(ny, |i| (r[nx + i] - (i + 1) as f64).powi(2));
    let k = nxf * nyf;
    let n = nxf + nyf;
    let t = u / (k * n) - (4.0 * k - 1.0) / (6.0 * n);
    let p = if nx.max(ny) <= 20 {
        pval_exact(u, nx as u64, ny as u64)
    } else {
        let et = (1.0 + 1.0 / n) / 6.0;
        let mut vt = (n + 1.0) * (4.0 * k * n - 3.0 * (nxf * nxf + nyf * nyf) - 2.0 * k);
        vt /= 45.0 * n * n * 4.0 * k;
        let tn = 1.0 / 6.0 + (t - et) / (45.0 * vt).sqrt();
        if tn < 0.003 { 1.0 } else { (1.0 - cdf_cvm_inf(tn)).max(0.0) }
    };
    Ok(CvmResult { statistic: t, pvalue: p })
}

/// Limiting CDF of the one-sample statistic (Evidently's `_cdf_cvm_inf`).
fn cdf_cvm_inf(x: f64) -> f64 {
    let mut tot = 0.0;
    for k in 0..10_000u32 {
        let kf = f64::from(k);
        let u = (ln_gamma(kf + 0.5) - ln_gamma(kf + 1.0)).exp() / (PI.powf(1.5) * x.sqrt());
        let y = 4.0 * kf + 1.0;
        let q = y * y / (16.0 * x);
        let b = bessel_k(0.25, q);
        let term = u * y.sqrt() * (-q).exp() * b;
        tot += term;
        if term.abs() < 1e-7 {
            break;
        }
    }
    tot
}

/// Exact p-value P(U ≥ u) by Evidently's `_pval_cvm_2samp_exact` recurrence.
fn pval_exact(s: f64, m: u64, n: u64) -> f64 {
    let g = gcd(m, n);
    let lcm = m / g * n;
    let a = (lcm / m) as i128;
    let b = (lcm / n) as i128;
    let mn = (m * n) as f64;
    let zeta = ((lcm * lcm * (m + n)) as f64 * (6.0 * s - mn * (4.0 * mn - 1.0)) / (6.0 * mn * mn)).floor();
    let mut combinations = 1.0f64;
    for i in 0..m {
        combinations = combinations * (m + n - i) as f64 / (i + 1) as f64;
    }
    let combinations = combinations.round();
    let mut gs: Vec<BTreeMap<i128, u128>> = vec![BTreeMap::new(); m as usize + 1];
    gs[0].insert(0, 1);
    for u in 0..=n as i128 {
        let mut next = Vec::with_capacity(gs.len());
        let mut tmp: BTreeMap<i128, u128> = BTreeMap::new();
        for (v, g) in gs.iter().enumerate() {
            for (&val, &freq) in g {
                *tmp.entry(val).or_insert(0) += freq;
            }
            let shift = (a * v as i128 - b * u).pow(2);
            tmp = tmp.into_iter().map(|(val, f)| (val + shift, f)).collect();
            next.push(tmp.clone());
        }
        gs = next;
    }
    let hits: u128 = gs[m as usize].iter().filter(|(v, _)| **v as f64 >= zeta).map(|(_, f)| *f).sum();
    hits as f64 / combinations
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_disjoint_small() {
        // Complete separation of 3 vs 3 is the most extreme of C(6, 3) = 20 arrangements, and so
        // is its mirror image: p = 2/20.
        let r = cramervonmises_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert!((r.pvalue - 0.1).abs() < 1e-15, "{}", r.pvalue);
    }

    #[test]
    fn too_small_is_error() {
        assert!(cramervonmises_2samp(&[1.0], &[1.0, 2.0]).is_err());
    }
}

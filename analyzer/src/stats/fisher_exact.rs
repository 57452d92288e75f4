//! Fisher's exact test on a 2×2 table, as Evidently's `fisher_exact` stattest.

use super::special::ln_gamma;
use super::{Error, Result, same_len};

/// Two-sided p-value of `scipy.stats.fisher_exact` on Evidently's table
/// `[[ones_cur, zeros_cur], [ones_ref, zeros_ref]]`, given aligned counts of at most two
/// categories. Evidently requires samples of equal size and at most two categories, and so
/// does this ([`Error::Invalid`] otherwise). A single category yields p = 1.
/// Drift when p < threshold (default 0.1).
///
/// Hypergeometric probabilities come from log-gamma, accurate to about 1e-13 relative for
/// the sample sizes drift works with; scipy uses Boost's evaluation.
pub fn fisher_exact_counts(reference: &[u64], current: &[u64]) -> Result<f64> {
    same_len(reference, current)?;
    if reference.len() > 2 {
        return Err(Error::Invalid("fisher_exact expects binary data, found more than 2 categories".into()));
    }
    let nr: u64 = reference.iter().sum();
    let nc: u64 = current.iter().sum();
    if nr != nc {
        return Err(Error::Invalid(format!("fisher_exact needs equal sample sizes, got {nr} and {nc}")));
    }
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    let table = [[at(current, 1), at(current, 0)], [at(reference, 1), at(reference, 0)]];
    Ok(fisher_exact(table))
}

/// Two-sided p-value of `scipy.stats.fisher_exact(table)` for a 2×2 table, following scipy's
/// mode-and-binary-search construction with its relative tolerance 1e-14.
pub fn fisher_exact(c: [[u64; 2]; 2]) -> f64 {
    let col0 = c[0][0] + c[1][0];
    let col1 = c[0][1] + c[1][1];
    let row0 = c[0][0] + c[0][1];
    let row1 = c[1][0] + c[1][1];
    if col0 == 0 || col1 == 0 || row0 == 0 || row1 == 0 {
        return 1.0;
    }
    let (n1, n2, n) = (row0, row1, col0);
    let total = n1 + n2;
    let hg = Hypergeom::new(total, n1, n);
    let x = c[0][0];
    let mode = ((n + 1) as f64 * (n1 + 1) as f64 / (total + 2) as f64) as u64;
    let pexact = hg.pmf(x);
    let pmode = hg.pmf(mode);
    let epsilon = 1e-14;
    let gamma = 1.0 + epsilon;
    let p = if (pexact - pmode).abs() / pexact.max(pmode) <= epsilon {
        return 1.0;
    } else if x < mode {
        let plower = hg.cdf(x);
        if hg.pmf(n) > pexact * gamma {
            return plower.min(1.0);
        }
        let guess = binary_search(|k| -hg.pmf(k), -pexact * gamma, mode, n);
        plower + hg.sf(guess as i64)
    } else {
        let pupper = hg.sf(x as i64 - 1);
        if hg.pmf(0) > pexact * gamma {
            return pupper.min(1.0);
        }
        let guess = binary_search(|k| hg.pmf(k), pexact * gamma, 0, mode);
        pupper + hg.cdf(guess)
    };
    p.min(1.0)
}

/// scipy's `_binary_search`: the k in [lo, hi] with a(k) ≤ d < a(k + 1), as scipy settles it.
fn binary_search(a: impl Fn(u64) -> f64, d: f64, mut lo: u64, mut hi: u64) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let midval = a(mid);
        if midval < d {
            lo = mid + 1;
        } else if midval > d {
            hi = mid.saturating_sub(1);
        } else {
            return mid;
        }
    }
    if a(lo) <= d { lo } else { lo.saturating_sub(1) }
}

struct Hypergeom {
    total: u64,
    good: u64,
    draws: u64,
    lo: u64,
    hi: u64,
}

impl Hypergeom {
    fn new(total: u64, good: u64, draws: u64) -> Self {
        let lo = (draws + good).saturating_sub(total);
        let hi = draws.min(good);
        Hypergeom { total, good, draws, lo, hi }
    }

    fn pmf(&self, k: u64) -> f64 {
        if k < self.lo || k > self.hi {
            return 0.0;
        }
        let lc = |n: u64, r: u64| ln_gamma(n as f64 + 1.0) - ln_gamma(r as f64 + 1.0) - ln_gamma((n - r) as f64 + 1.0);
        (lc(self.good, k) + lc(self.total - self.good, self.draws - k) - lc(self.total, self.draws)).exp()
    }

    fn cdf(&self, k: u64) -> f64 {
        (self.lo..=k.min(self.hi)).map(|i| self.pmf(i)).sum::<f64>().min(1.0)
    }

    fn sf(&self, k: i64) -> f64 {
        let start = (k + 1).max(self.lo as i64) as u64;
        (start..=self.hi).map(|i| self.pmf(i)).sum::<f64>().min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tea_tasting() {
        // Fisher's lady tasting tea: [[3, 1], [1, 3]] has two-sided p = 34/70.
        let p = fisher_exact([[3, 1], [1, 3]]);
        assert!((p - 34.0 / 70.0).abs() < 1e-12, "{p}");
    }

    #[test]
    fn single_category_is_one() {
        assert_eq!(fisher_exact_counts(&[5], &[5]).unwrap(), 1.0);
        assert!(fisher_exact_counts(&[5, 1], &[5]).is_err());
    }
}

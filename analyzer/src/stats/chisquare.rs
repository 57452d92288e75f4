//! Pearson's chi-square goodness of fit, as Evidently's `chisquare` stattest.

use super::special::chi2_sf;
use super::{Result, count_totals, np_sum_by};

/// p-value of `scipy.stats.chisquare(f_obs=current, f_exp=reference · n_cur / n_ref)` over the
/// union of categories, as Evidently 0.7 `_chi_stat_test`.
///
/// Statistic Σ (obs − exp)² / exp with k − 1 degrees of freedom (k = categories). A category
/// absent from the reference has exp = 0, an infinite statistic and p = 0. With one category
/// the statistic is the rounding residue of `n_ref · (n_cur / n_ref)` and the p-value follows
/// scipy's `chdtrc(0, x)`: 0 when that residue is positive, NaN when it is exactly 0.
/// Drift when p < threshold (default 0.05).
pub fn chisquare(reference: &[u64], current: &[u64]) -> Result<f64> {
    let (nr, nc) = count_totals(reference, current)?;
    let k_norm = nc as f64 / nr as f64;
    let stat = np_sum_by(reference.len(), |i| {
        let exp = reference[i] as f64 * k_norm;
        let d = current[i] as f64 - exp;
        d * d / exp
    });
    let df = reference.len() as f64 - 1.0;
    Ok(chi2_sf(df, stat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        // obs [30, 70] vs exp [50, 50]: stat = 16, df = 1; chi2.sf(16, 1) = 6.334248366623996e-05.
        let p = chisquare(&[50, 50], &[30, 70]).unwrap();
        assert!((p - 6.334248366623996e-05).abs() < 1e-15);
        assert_eq!(chisquare(&[0, 10], &[1, 9]).unwrap(), 0.0);
    }
}

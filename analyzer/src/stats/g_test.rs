//! G-test (log-likelihood ratio), as Evidently's `g_test` stattest.

use super::special::chi2_sf;
use super::{Error, Result, count_totals, np_sum_by};

/// p-value of `scipy.stats.power_divergence(f_obs=current, f_exp=reference,
/// lambda_="log-likelihood")`: statistic 2 Σ obs · ln(obs / exp), k − 1 degrees of freedom.
///
/// Evidently passes raw reference counts as expected frequencies, and scipy refuses totals that
/// differ by more than √ε relative, so the test only exists for samples of equal size; other
/// sizes are [`Error::Invalid`], as scipy's `ValueError`. Drift when p < threshold (default 0.1).
pub fn g_test(reference: &[u64], current: &[u64]) -> Result<f64> {
    let (nr, nc) = count_totals(reference, current)?;
    let rel = (nr as f64 - nc as f64).abs() / (nr.min(nc) as f64);
    if rel > f64::EPSILON.sqrt() {
        return Err(Error::Invalid(format!(
            "g_test needs equal totals of observed and expected counts, got {nc} and {nr}"
        )));
    }
    let stat = np_sum_by(reference.len(), |i| {
        let obs = current[i] as f64;
        let exp = reference[i] as f64;
        // scipy's xlogy: 0 · ln(anything) is 0.
        if obs == 0.0 { 0.0 } else { 2.0 * (obs * (obs / exp).ln()) }
    });
    Ok(chi2_sf(reference.len() as f64 - 1.0, stat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        // 2·(30 ln(30/50) + 70 ln(70/50)) with df 1.
        let stat = 2.0 * (30.0 * (0.6f64).ln() + 70.0 * (1.4f64).ln());
        let p = g_test(&[50, 50], &[30, 70]).unwrap();
        assert!((p - chi2_sf(1.0, stat)).abs() < 1e-16);
        assert!(g_test(&[50, 50], &[30, 80]).is_err());
    }
}

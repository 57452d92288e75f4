//! Kullback-Leibler divergence, as Evidently's `kl_div` stattest.

use super::{Result, np_sum, np_sum_by, same_len};

/// `scipy.stats.entropy(reference, current)`: both arrays renormalised to sum 1, then
/// Σ rel_entr(p, q) with the natural log. Evidently passes zero-filled binned shares
/// ([`super::binning::fill_zeros`]). Drift when KL ≥ threshold (default 0.1).
pub fn kl_div(reference: &[f64], current: &[f64]) -> Result<f64> {
    same_len(reference, current)?;
    let sp = np_sum(reference);
    let sq = np_sum(current);
    Ok(np_sum_by(reference.len(), |i| rel_entr(1.0 * reference[i] / sp, 1.0 * current[i] / sq)))
}

/// scipy's `special.rel_entr(x, y)`: x·ln(x/y) for x, y > 0; 0 for x = 0, y ≥ 0; +∞ otherwise.
pub fn rel_entr(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        let v = kl_div(&[1.0, 1.0], &[1.0, 3.0]).unwrap();
        let want = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((v - want).abs() < 1e-15);
    }
}

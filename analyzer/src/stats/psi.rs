//! Population Stability Index, as Evidently's `psi` stattest.

use super::{Result, np_sum_by, same_len};

/// PSI = Σᵢ (refᵢ − curᵢ) · ln(refᵢ / curᵢ) over binned shares that already went through
/// [`super::binning::fill_zeros`] (matches Evidently 0.7 `_psi`, summed as `np.sum`).
///
/// Drift when PSI ≥ threshold (default 0.1).
pub fn psi(reference: &[f64], current: &[f64]) -> Result<f64> {
    same_len(reference, current)?;
    Ok(np_sum_by(reference.len(), |i| (reference[i] - current[i]) * (reference[i] / current[i]).ln()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        let v = psi(&[0.5, 0.5], &[0.25, 0.75]).unwrap();
        let want = 0.25 * 2f64.ln() + (-0.25) * (0.5f64 / 0.75).ln();
        assert!((v - want).abs() < 1e-15);
        assert_eq!(psi(&[0.3, 0.7], &[0.3, 0.7]).unwrap(), 0.0);
    }
}

//! Energy distance, as Evidently's `ed` stattest.

use super::Result;
use super::wasserstein::cdf_distance;

/// `scipy.stats.energy_distance(reference, current)` = √2 · (∫(U − V)² dx)^½.
///
/// Drift when the distance is strictly greater than the threshold (default 0.1), as Evidently.
pub fn energy_distance(reference: &[f64], current: &[f64]) -> Result<f64> {
    Ok(std::f64::consts::SQRT_2 * cdf_distance(2, reference, current)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        // U steps at 0, V at 1: (U − V)² = 1 on [0, 1), so √2 · 1.
        let v = energy_distance(&[0.0], &[1.0]).unwrap();
        assert!((v - std::f64::consts::SQRT_2).abs() < 1e-15);
    }
}

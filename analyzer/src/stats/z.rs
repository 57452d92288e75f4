//! Two-proportion z-test, as Evidently's `z` stattest.

use super::special::ndtr;
use super::{Result, count_totals};

/// Two-sided p-value of Evidently 0.7's `_z_stat_test` on aligned category counts whose
/// index 0 is the *smallest* category of the union (Evidently sorts the union and tests the
/// share of values different from the first one).
///
/// With p₁, p₂ the shares of "not category 0" and P the pooled share,
/// z = (p₁ − p₂) / √(P(1 − P)(1/n₁ + 1/n₂)) and p = 2·(1 − Φ(|z|)), computed as Evidently does
/// (`1 − norm.cdf`, so p-values below ~1e-16 round to 0). When both samples hold the same single
/// category, p = 1. Drift when p < threshold (default 0.05).
pub fn z_test(reference: &[u64], current: &[u64]) -> Result<f64> {
    let (n1, n2) = count_totals(reference, current)?;
    let single = |c: &[u64]| c.iter().filter(|&&v| v > 0).count() == 1;
    let same_single = single(reference)
        && single(current)
        && reference.iter().position(|&v| v > 0) == current.iter().position(|&v| v > 0);
    if same_single {
        return Ok(1.0);
    }
    let (n1, n2) = (n1 as f64, n2 as f64);
    let k1 = n1 - reference[0] as f64;
    let k2 = n2 - current[0] as f64;
    let p1 = k1 / n1;
    let p2 = k2 / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    Ok(2.0 * (1.0 - ndtr(z.abs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        // p1 = 0.5, p2 = 0.7, n = 100 each: P = 0.6, z = −0.2/√(0.24·0.02) = −2.886751345948129.
        let p = z_test(&[50, 50], &[30, 70]).unwrap();
        let z: f64 = 0.2 / (0.24f64 * 0.02).sqrt();
        assert!((p - 2.0 * (1.0 - ndtr(z))).abs() < 1e-16);
        assert_eq!(z_test(&[0, 5], &[0, 9]).unwrap(), 1.0);
    }
}

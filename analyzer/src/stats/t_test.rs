//! Student's two-sample t-test, as Evidently's `t_test` stattest.

use super::special::t_sf;
use super::{Result, non_empty, np_sum, np_sum_by};

/// Two-sided p-value of `scipy.stats.ttest_ind(reference, current)` with its default
/// `equal_var=True` (pooled variance, n₁ + n₂ − 2 degrees of freedom), as Evidently 0.7.
///
/// t = (m₁ − m₂) / √(s²(1/n₁ + 1/n₂)), p = 2·P(T > |t|). Two constant samples with equal
/// means give 0/0 and a NaN p-value, as scipy. Drift when p < threshold (default 0.05).
pub fn t_test(reference: &[f64], current: &[f64]) -> Result<f64> {
    non_empty(reference, current)?;
    let (m1, v1, n1) = mean_var(reference);
    let (m2, v2, n2) = mean_var(current);
    let v1 = if n1 == 1.0 { 0.0 } else { v1 };
    let v2 = if n2 == 1.0 { 0.0 } else { v2 };
    let df = n1 + n2 - 2.0;
    let svar = ((n1 - 1.0) * v1 + (n2 - 1.0) * v2) / df;
    let denom = (svar * (1.0 / n1 + 1.0 / n2)).sqrt();
    let t = (m1 - m2) / denom;
    Ok(2.0 * t_sf(df, t.abs()))
}

/// Mean and ddof = 1 variance in scipy's `_var` order: mean of squared deviations times n/(n−1).
fn mean_var(x: &[f64]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let mean = np_sum(x) / n;
    let m2 = np_sum_by(x.len(), |i| {
        let d = x[i] - mean;
        d * d
    }) / n;
    (mean, m2 * (n / (n - 1.0)), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        // ttest_ind([1,2,3,4], [3,4,5,6]): t = −2.1908902300206643, df = 6, p = 0.07098765432098762
        let p = t_test(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]).unwrap();
        assert!((p - 0.07098765432098762).abs() < 1e-12, "{p}");
    }
}

//! Realized regression metrics, matching scikit-learn 1.9.1 on the same inputs.
//!
//! Means are numpy's pairwise sums divided by `n` ([`crate::stats::np_sum_by`]), the order
//! scikit-learn's `np.average` adds in, so edge cases that hinge on the last bit (a constant
//! target whose mean is not exactly representable, for R²) decide the same way.

use super::{PerformanceError, Result, finite, non_empty, same_len};
use crate::stats::np_sum_by;

fn check(y_true: &[f64], y_pred: &[f64]) -> Result<usize> {
    same_len(y_true.len(), y_pred.len())?;
    non_empty(y_true.len())?;
    finite(y_true)?;
    finite(y_pred)?;
    Ok(y_true.len())
}

/// Mean absolute error `mean |y − ŷ|`; matches `sklearn.metrics.mean_absolute_error`.
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    let n = check(y_true, y_pred)?;
    Ok(np_sum_by(n, |i| (y_pred[i] - y_true[i]).abs()) / n as f64)
}

/// Root mean squared error `sqrt(mean (y − ŷ)²)`; matches
/// `sklearn.metrics.root_mean_squared_error`.
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    let n = check(y_true, y_pred)?;
    Ok((np_sum_by(n, |i| {
        let d = y_true[i] - y_pred[i];
        d * d
    }) / n as f64)
        .sqrt())
}

/// Mean absolute percentage error `mean |y − ŷ| / max(|y|, ε)` with ε = `f64::EPSILON`,
/// as a fraction (not ×100). A zero target therefore gives a huge but finite term, as in
/// `sklearn.metrics.mean_absolute_percentage_error`, which this matches.
pub fn mape(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    let n = check(y_true, y_pred)?;
    Ok(np_sum_by(n, |i| (y_pred[i] - y_true[i]).abs() / y_true[i].abs().max(f64::EPSILON)) / n as f64)
}

/// Coefficient of determination `1 − Σ(y − ŷ)² / Σ(y − ȳ)²`.
///
/// With a constant target (Σ(y − ȳ)² = 0) it is 1.0 for perfect predictions and 0.0
/// otherwise, as `sklearn.metrics.r2_score` with its default `force_finite=True`, which this
/// matches. [`PerformanceError::Undefined`] for fewer than two rows (scikit-learn: NaN).
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    let n = check(y_true, y_pred)?;
    if n < 2 {
        return Err(PerformanceError::Undefined("R² needs at least two rows"));
    }
    let numerator = np_sum_by(n, |i| {
        let d = y_true[i] - y_pred[i];
        d * d
    });
    let mean = np_sum_by(n, |i| y_true[i]) / n as f64;
    let denominator = np_sum_by(n, |i| {
        let d = y_true[i] - mean;
        d * d
    });
    Ok(if numerator == 0.0 {
        1.0
    } else if denominator == 0.0 {
        0.0
    } else {
        1.0 - numerator / denominator
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_values() {
        let t = [3.0, -0.5, 2.0, 7.0];
        let p = [2.5, 0.0, 2.0, 8.0];
        assert_eq!(mae(&t, &p), Ok(0.5));
        assert!((rmse(&t, &p).unwrap() - 0.375f64.sqrt()).abs() < 1e-15);
        // sklearn docs example: 0.948...
        assert!((r2(&t, &p).unwrap() - 0.9486081370449679).abs() < 1e-15);
        // sklearn docs example: 0.3273...
        assert!((mape(&t, &p).unwrap() - 0.3273809523809524).abs() < 1e-15);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(r2(&[1.0, 1.0], &[1.0, 1.0]), Ok(1.0));
        assert_eq!(r2(&[1.0, 1.0], &[1.0, 2.0]), Ok(0.0));
        assert!(matches!(r2(&[1.0], &[1.0]), Err(PerformanceError::Undefined(_))));
        assert_eq!(mape(&[0.0], &[1.0]), Ok(1.0 / f64::EPSILON));
        assert_eq!(mae(&[], &[]), Err(PerformanceError::Empty));
        assert!(matches!(mae(&[1.0, f64::NAN], &[1.0, 1.0]), Err(PerformanceError::NonFinite { row: 1 })));
    }
}

//! Alert thresholds for a metric: constant, or calibrated from the metric's own spread over
//! reference chunks (NannyML's `StandardDeviationThreshold` and `calculate_threshold_values`).

use super::{PerformanceError, Result};
use crate::stats::np_sum_by;

/// Bounds outside which a metric value raises an alert; `None` means unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Threshold {
    /// Values strictly below this breach the threshold.
    pub lower: Option<f64>,
    /// Values strictly above this breach the threshold.
    pub upper: Option<f64>,
}

/// Multipliers of the reference standard deviation for [`Threshold::from_reference`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StdMultipliers {
    /// `k` of the lower bound `mean − k·std`; `None` leaves the lower side open.
    pub lower: Option<f64>,
    /// `k` of the upper bound `mean + k·std`; `None` leaves the upper side open.
    pub upper: Option<f64>,
}

impl Default for StdMultipliers {
    /// NannyML's default: 3 on both sides.
    fn default() -> Self {
        Self { lower: Some(3.0), upper: Some(3.0) }
    }
}

/// The range a metric can take, used to clamp calibrated thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValueRange {
    /// Smallest possible value, if any.
    pub min: Option<f64>,
    /// Largest possible value, if any.
    pub max: Option<f64>,
}

impl ValueRange {
    /// `[0, 1]`: accuracy, precision, recall, F1, ROC AUC.
    pub const UNIT: Self = Self { min: Some(0.0), max: Some(1.0) };
    /// `[0, ∞)`: MAE, RMSE, MAPE, log loss.
    pub const NON_NEGATIVE: Self = Self { min: Some(0.0), max: None };
    /// `(−∞, 1]`: R².
    pub const AT_MOST_ONE: Self = Self { min: None, max: Some(1.0) };
    /// No limits.
    pub const UNBOUNDED: Self = Self { min: None, max: None };
}

impl Threshold {
    /// A constant threshold (NannyML's `ConstantThreshold`).
    pub fn constant(lower: Option<f64>, upper: Option<f64>) -> Self {
        Self { lower, upper }
    }

    /// `mean ± k·std` of the metric over reference chunks, clamped to `range`.
    ///
    /// NaN chunk values are ignored; mean and std are numpy's `nanmean` and `nanstd`
    /// (population std, ddof = 0), as NannyML's `StandardDeviationThreshold` computes them.
    /// A bound at or beyond the metric's limit is replaced by the limit, as NannyML's
    /// `calculate_threshold_values` does by default (`override_using_none=False`).
    /// [`PerformanceError::Empty`] when no finite value remains; `NonFinite` for ±inf.
    pub fn from_reference(reference: &[f64], k: StdMultipliers, range: ValueRange) -> Result<Self> {
        if let Some(row) = reference.iter().position(|v| v.is_infinite()) {
            return Err(PerformanceError::NonFinite { row });
        }
        let n = reference.len();
        let count = reference.iter().filter(|v| !v.is_nan()).count();
        if count == 0 {
            return Err(PerformanceError::Empty);
        }
        let zero_nan = |i: usize| if reference[i].is_nan() { 0.0 } else { reference[i] };
        let mean = np_sum_by(n, zero_nan) / count as f64;
        let var = np_sum_by(n, |i| {
            if reference[i].is_nan() {
                0.0
            } else {
                let d = reference[i] - mean;
                d * d
            }
        }) / count as f64;
        let std = var.sqrt();
        let mut lower = k.lower.map(|k| mean - std * k);
        let mut upper = k.upper.map(|k| mean + std * k);
        if let (Some(l), Some(min)) = (lower, range.min)
            && l <= min
        {
            lower = Some(min);
        }
        if let (Some(u), Some(max)) = (upper, range.max)
            && u >= max
        {
            upper = Some(max);
        }
        Ok(Self { lower, upper })
    }

    /// Whether `value` lies strictly outside the bounds. NaN (a metric that could not be
    /// computed) never breaches.
    pub fn breached(&self, value: f64) -> bool {
        self.lower.is_some_and(|l| value < l) || self.upper.is_some_and(|u| value > u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_plus_minus_k_std_with_population_std() {
        let t = Threshold::from_reference(&[0.8, 0.9, f64::NAN, 1.0], StdMultipliers::default(), ValueRange::UNBOUNDED)
            .unwrap();
        let std = (0.02f64 / 3.0).sqrt();
        assert!((t.lower.unwrap() - (0.9 - 3.0 * std)).abs() < 1e-12);
        assert!((t.upper.unwrap() - (0.9 + 3.0 * std)).abs() < 1e-12);
        assert!(t.breached(0.5));
        assert!(!t.breached(0.9));
        assert!(!t.breached(f64::NAN));
    }

    #[test]
    fn clamps_to_range_and_handles_open_sides() {
        let t = Threshold::from_reference(
            &[0.9, 1.0],
            StdMultipliers { lower: Some(2.0), upper: Some(2.0) },
            ValueRange::UNIT,
        )
        .unwrap();
        assert_eq!(t.upper, Some(1.0));
        assert!((t.lower.unwrap() - 0.85).abs() < 1e-12);
        let t = Threshold::constant(None, Some(0.1));
        assert!(t.breached(0.2));
        assert!(!t.breached(-5.0));
        assert_eq!(
            Threshold::from_reference(&[f64::NAN], StdMultipliers::default(), ValueRange::UNIT),
            Err(PerformanceError::Empty)
        );
    }
}

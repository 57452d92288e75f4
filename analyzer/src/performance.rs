//! Performance metrics: how good a model's outputs are, with labels ([`classification`],
//! [`regression`]) and before labels arrive ([`cbpe`], with [`calibration`]), and the
//! thresholds that decide when a metric has moved too far ([`thresholds`]).
//!
//! Every metric is a pure function over slices with no IO, documented with its formula and the
//! reference it matches (scikit-learn 1.9.1 for realized metrics, NannyML 0.13 for CBPE).
//! Bad input (empty slices, mismatched lengths, NaN, probabilities outside `[0, 1]`, a metric
//! undefined on the data such as ROC AUC with one class) is a [`PerformanceError`], never a
//! panic. Where scikit-learn returns NaN with a warning, the function here returns an error.
//!
//! Rows with a missing label or prediction are the caller's to drop before calling (the
//! label join produces them); [`present_pairs`] does that for string columns.

pub mod calibration;
pub mod cbpe;
pub mod classification;
pub mod regression;
pub mod thresholds;

pub use calibration::{
    Calibration, IsotonicCalibrator, MulticlassCalibration, expected_calibration_error, needs_calibration,
};
pub use cbpe::{
    BinaryCbpe, EstimatedPerformance, ExpectedConfusion, MulticlassCbpe, estimate_binary, estimate_multiclass,
    estimate_roc_auc,
};
pub use classification::{
    Average, PrecisionRecallF1, accuracy, binary_roc_auc, f1, log_loss, log_loss_binary, precision,
    precision_recall_f1, recall, roc_auc, roc_auc_ovr_macro,
};
pub use regression::{mae, mape, r2, rmse};
pub use thresholds::{StdMultipliers, Threshold, ValueRange};

/// Why a performance metric cannot be computed on the given inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PerformanceError {
    /// No rows (after dropping missing values, where the function does that).
    #[error("no rows to compute the metric on")]
    Empty,
    /// Two inputs that must be aligned row by row have different lengths.
    #[error("inputs differ in length: {expected} vs {got}")]
    LengthMismatch {
        /// Length of the first input.
        expected: usize,
        /// Length of the mismatched input.
        got: usize,
    },
    /// A numeric input holds NaN or ±inf where the metric needs finite values.
    #[error("input holds a non-finite value at row {row}")]
    NonFinite {
        /// Zero-based row of the first offending value.
        row: usize,
    },
    /// A probability lies outside `[0, 1]`.
    #[error("probability {value} at row {row} is outside [0, 1]")]
    InvalidProbability {
        /// Zero-based row of the first offending value.
        row: usize,
        /// The offending value.
        value: f64,
    },
    /// A label is not among the classes the scores are given for.
    #[error("label {label:?} at row {row} is not one of the scored classes")]
    UnknownLabel {
        /// Zero-based row of the label.
        row: usize,
        /// The label.
        label: String,
    },
    /// The metric is not defined on this data (e.g. ROC AUC when only one class is present,
    /// R² with fewer than two rows); scikit-learn returns NaN or raises in these cases.
    #[error("metric undefined: {0}")]
    Undefined(&'static str),
}

/// Result alias for the performance module.
pub type Result<T, E = PerformanceError> = std::result::Result<T, E>;

/// Keeps the rows where both `y_true` and `y_pred` are present, in order.
///
/// Returns [`PerformanceError::LengthMismatch`] when the columns are not aligned.
pub fn present_pairs<'a>(
    y_true: &[Option<&'a str>],
    y_pred: &[Option<&'a str>],
) -> Result<(Vec<&'a str>, Vec<&'a str>)> {
    same_len(y_true.len(), y_pred.len())?;
    Ok(y_true.iter().zip(y_pred).filter_map(|(t, p)| Some(((*t)?, (*p)?))).unzip())
}

pub(crate) fn same_len(expected: usize, got: usize) -> Result<()> {
    if expected == got { Ok(()) } else { Err(PerformanceError::LengthMismatch { expected, got }) }
}

pub(crate) fn non_empty(n: usize) -> Result<()> {
    if n == 0 { Err(PerformanceError::Empty) } else { Ok(()) }
}

pub(crate) fn finite(values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(row) => Err(PerformanceError::NonFinite { row }),
        None => Ok(()),
    }
}

pub(crate) fn probabilities(values: &[f64]) -> Result<()> {
    finite(values)?;
    match values.iter().position(|v| !(0.0..=1.0).contains(v)) {
        Some(row) => Err(PerformanceError::InvalidProbability { row, value: values[row] }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_pairs_drops_rows_missing_either_side() {
        let (t, p) =
            present_pairs(&[Some("a"), None, Some("b"), Some("c")], &[Some("a"), Some("b"), None, Some("d")]).unwrap();
        assert_eq!(t, vec!["a", "c"]);
        assert_eq!(p, vec!["a", "d"]);
        assert!(present_pairs(&[Some("a")], &[]).is_err());
    }
}

//! Estimated performance before labels arrive: confidence-based performance estimation (CBPE),
//! as NannyML 0.13 defines it.
//!
//! If a classifier's calibrated probability for the positive class of row i is `p_i`, the row
//! is a true positive with probability `p_i` when predicted positive, and a false negative with
//! probability `p_i` when predicted negative. Summing gives the expected confusion matrix
//! ([`ExpectedConfusion`]), and metrics computed from it are unbiased-ish estimates of the
//! realized ones as long as the calibration (fitted on the reference, see
//! [`super::calibration`]) still holds on the analysed data — i.e. under covariate shift, not
//! concept drift.
//!
//! Formulas, with sums over rows predicted positive (ŷ=1) or negative (ŷ=0):
//! `TP = Σ_{ŷ=1} p`, `FP = Σ_{ŷ=1} (1−p)`, `FN = Σ_{ŷ=0} p`, `TN = Σ_{ŷ=0} (1−p)`;
//! accuracy = (TP+TN)/n, precision = TP/(TP+FP), recall = TP/(TP+FN),
//! F1 = TP/(TP + (FP+FN)/2), each 0 when its denominator is 0 — NannyML's `estimate_accuracy`,
//! `estimate_precision`, `estimate_recall`, `estimate_f1`. ROC AUC: [`estimate_roc_auc`].

use super::calibration::{Calibration, MulticlassCalibration};
use super::{PerformanceError, Result, non_empty, probabilities, same_len};
use crate::stats::np_sum_by;

/// Expected confusion-matrix entries (sums of probabilities, so not integers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpectedConfusion {
    /// Expected true positives `Σ_{ŷ=1} p`.
    pub true_positive: f64,
    /// Expected false positives `Σ_{ŷ=1} (1−p)`.
    pub false_positive: f64,
    /// Expected false negatives `Σ_{ŷ=0} p`.
    pub false_negative: f64,
    /// Expected true negatives `Σ_{ŷ=0} (1−p)`.
    pub true_negative: f64,
}

impl ExpectedConfusion {
    /// Expected counts from the positive-class prediction and calibrated probability per row.
    ///
    /// Sums run over all rows with zeros for the other side, as numpy's
    /// `np.sum(np.where(...))` in NannyML.
    pub fn from_rows(predicted_positive: &[bool], proba: &[f64]) -> Result<Self> {
        same_len(predicted_positive.len(), proba.len())?;
        non_empty(proba.len())?;
        probabilities(proba)?;
        let n = proba.len();
        let pp = predicted_positive;
        Ok(Self {
            true_positive: np_sum_by(n, |i| if pp[i] { proba[i] } else { 0.0 }),
            false_positive: np_sum_by(n, |i| if pp[i] { 1.0 - proba[i] } else { 0.0 }),
            false_negative: np_sum_by(n, |i| if pp[i] { 0.0 } else { proba[i] }),
            true_negative: np_sum_by(n, |i| if pp[i] { 0.0 } else { 1.0 - proba[i] }),
        })
    }

    /// Estimated accuracy `(TP + TN) / n` with `n` the number of rows.
    pub fn accuracy(&self, n: usize) -> f64 {
        (self.true_positive + self.true_negative) / n as f64
    }

    /// Estimated precision `TP / (TP + FP)`, 0 when the denominator is 0.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    /// Estimated recall `TP / (TP + FN)`, 0 when the denominator is 0.
    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    /// Estimated F1 `TP / (TP + (FP + FN)/2)`, 0 when the denominator is 0.
    pub fn f1(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + 0.5 * (self.false_positive + self.false_negative))
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den != 0.0 { num / den } else { 0.0 }
}

/// Estimated metrics for one chunk of unlabelled data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimatedPerformance {
    /// Estimated accuracy.
    pub accuracy: f64,
    /// Estimated precision (binary: positive class; multiclass: macro).
    pub precision: f64,
    /// Estimated recall (binary: positive class; multiclass: macro).
    pub recall: f64,
    /// Estimated F1 (binary: positive class; multiclass: macro).
    pub f1: f64,
    /// Estimated ROC AUC (multiclass: one-vs-rest macro); `None` when undefined because the
    /// expected positives or negatives are 0 (NannyML: NaN).
    pub roc_auc: Option<f64>,
    /// Expected confusion matrix (binary only).
    pub confusion: Option<ExpectedConfusion>,
}

/// NannyML's CBPE ROC AUC estimate (`estimate_roc_auc`).
///
/// Rows are sorted by the model's own (uncalibrated) score, descending; along that order the
/// expected true positives are the running sum of calibrated probabilities and the expected
/// false positives `k − TP_k` after k rows; both are rounded to 5 decimals (as NannyML does,
/// to absorb rounding noise), normalised by their totals to TPR and FPR, and the area is the
/// trapezoidal sum over all n+1 points. Ties in the uncalibrated score keep input order
/// (NannyML's `argsort` order is unspecified; for binary CBPE tied scores have equal
/// calibrated probabilities, so the order does not change the result).
/// [`PerformanceError::Undefined`] when the expected positives or negatives round to 0.
pub fn estimate_roc_auc(calibrated: &[f64], uncalibrated: &[f64]) -> Result<f64> {
    same_len(calibrated.len(), uncalibrated.len())?;
    non_empty(calibrated.len())?;
    probabilities(calibrated)?;
    super::finite(uncalibrated)?;
    let n = calibrated.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| uncalibrated[b].total_cmp(&uncalibrated[a]));
    let round5 = |x: f64| (x * 1e5).round_ties_even() / 1e5;
    let mut tps = Vec::with_capacity(n + 1);
    let mut fps = Vec::with_capacity(n + 1);
    tps.push(0.0);
    fps.push(0.0);
    let mut cum = 0.0;
    for (k, &i) in order.iter().enumerate() {
        cum += calibrated[i];
        tps.push(round5(cum));
        fps.push(round5((1 + k) as f64 - cum));
    }
    let (tp_total, fp_total) = (tps[n], fps[n]);
    if tp_total == 0.0 || fp_total == 0.0 {
        return Err(PerformanceError::Undefined("estimated ROC AUC needs expected positives and negatives"));
    }
    let tpr = |k: usize| tps[k] / tp_total;
    let fpr = |k: usize| fps[k] / fp_total;
    Ok(np_sum_by(n, |k| (fpr(k + 1) - fpr(k)) * (tpr(k + 1) + tpr(k)) / 2.0))
}

/// Binary CBPE from calibrated probabilities: [`ExpectedConfusion`] metrics and
/// [`estimate_roc_auc`] (which sorts by `uncalibrated`; pass the calibrated column twice when
/// no calibration was applied).
pub fn estimate_binary(
    predicted_positive: &[bool],
    calibrated: &[f64],
    uncalibrated: &[f64],
) -> Result<EstimatedPerformance> {
    let cm = ExpectedConfusion::from_rows(predicted_positive, calibrated)?;
    let roc_auc = match estimate_roc_auc(calibrated, uncalibrated) {
        Ok(v) => Some(v),
        Err(PerformanceError::Undefined(_)) => None,
        Err(e) => return Err(e),
    };
    Ok(EstimatedPerformance {
        accuracy: cm.accuracy(calibrated.len()),
        precision: cm.precision(),
        recall: cm.recall(),
        f1: cm.f1(),
        roc_auc,
        confusion: Some(cm),
    })
}

/// Multiclass CBPE (NannyML's `MulticlassClassification*` estimators).
///
/// `calibrated[k]` and `uncalibrated[k]` are the columns of `classes[k]`, calibrated rows
/// summing to 1 (see [`MulticlassCalibration::apply`]). Accuracy is the mean calibrated
/// probability of the predicted class; precision, recall, F1 and ROC AUC are the unweighted
/// means over classes of the binary estimates of "predicted this class" against that class's
/// column. A prediction outside `classes` is [`PerformanceError::UnknownLabel`]. ROC AUC is
/// `None` when any class's estimate is undefined (NannyML: NaN).
pub fn estimate_multiclass(
    y_pred: &[&str],
    classes: &[&str],
    calibrated: &[&[f64]],
    uncalibrated: &[&[f64]],
) -> Result<EstimatedPerformance> {
    same_len(classes.len(), calibrated.len())?;
    same_len(classes.len(), uncalibrated.len())?;
    non_empty(y_pred.len())?;
    let n = y_pred.len();
    let predicted: Vec<usize> = y_pred
        .iter()
        .enumerate()
        .map(|(row, p)| {
            classes
                .iter()
                .position(|c| c == p)
                .ok_or_else(|| PerformanceError::UnknownLabel { row, label: (*p).to_string() })
        })
        .collect::<Result<_>>()?;
    for col in calibrated.iter().chain(uncalibrated) {
        same_len(n, col.len())?;
    }
    let k = classes.len();
    let mut prec = Vec::with_capacity(k);
    let mut rec = Vec::with_capacity(k);
    let mut f1 = Vec::with_capacity(k);
    let mut auc = Vec::with_capacity(k);
    for c in 0..k {
        let pp: Vec<bool> = predicted.iter().map(|p| *p == c).collect();
        let cm = ExpectedConfusion::from_rows(&pp, calibrated[c])?;
        prec.push(cm.precision());
        rec.push(cm.recall());
        f1.push(cm.f1());
        auc.push(match estimate_roc_auc(calibrated[c], uncalibrated[c]) {
            Ok(v) => Some(v),
            Err(PerformanceError::Undefined(_)) => None,
            Err(e) => return Err(e),
        });
    }
    let mean = |v: &[f64]| np_sum_by(v.len(), |i| v[i]) / v.len() as f64;
    let roc_auc = auc.iter().copied().collect::<Option<Vec<f64>>>().map(|v| mean(&v));
    Ok(EstimatedPerformance {
        accuracy: np_sum_by(n, |i| calibrated[predicted[i]][i].max(0.0)) / n as f64,
        precision: mean(&prec),
        recall: mean(&rec),
        f1: mean(&f1),
        roc_auc,
        confusion: None,
    })
}

/// Binary CBPE fitted on a reference: the calibration decision travels with the estimator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BinaryCbpe {
    /// Calibration of the positive-class score, chosen on the reference.
    pub calibration: Calibration,
}

impl BinaryCbpe {
    /// Fits on reference positive-class scores and labels ([`Calibration::fit`]).
    pub fn fit(reference_scores: &[f64], reference_positive: &[bool]) -> Result<Self> {
        Ok(Self { calibration: Calibration::fit(reference_scores, reference_positive)? })
    }

    /// Estimates a chunk from its predictions and raw positive-class scores.
    pub fn estimate(&self, predicted_positive: &[bool], scores: &[f64]) -> Result<EstimatedPerformance> {
        let calibrated = self.calibration.apply(scores)?;
        estimate_binary(predicted_positive, &calibrated, scores)
    }
}

/// Multiclass CBPE fitted on a reference.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MulticlassCbpe {
    /// Per-class calibration, chosen on the reference.
    pub calibration: MulticlassCalibration,
}

impl MulticlassCbpe {
    /// Fits on reference labels and per-class score columns ([`MulticlassCalibration::fit`]).
    pub fn fit(y_true: &[&str], classes: &[&str], scores: &[&[f64]]) -> Result<Self> {
        Ok(Self { calibration: MulticlassCalibration::fit(y_true, classes, scores)? })
    }

    /// Estimates a chunk from its predicted labels and raw per-class score columns (in the
    /// order of the classes given to [`Self::fit`]).
    pub fn estimate(&self, y_pred: &[&str], scores: &[&[f64]]) -> Result<EstimatedPerformance> {
        let calibrated = self.calibration.apply(scores)?;
        let cal: Vec<&[f64]> = calibrated.iter().map(|c| c.as_slice()).collect();
        let classes: Vec<&str> = self.calibration.classes.iter().map(|c| c.as_str()).collect();
        estimate_multiclass(y_pred, &classes, &cal, scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_binary_example() {
        // Predicted positive with p = 0.9, 0.6; predicted negative with p = 0.2, 0.1.
        let pp = [true, true, false, false];
        let p = [0.9, 0.6, 0.2, 0.1];
        let e = estimate_binary(&pp, &p, &p).unwrap();
        let cm = e.confusion.unwrap();
        assert!((cm.true_positive - 1.5).abs() < 1e-15);
        assert!((cm.false_positive - 0.5).abs() < 1e-15);
        assert!((cm.false_negative - 0.3).abs() < 1e-15);
        assert!((cm.true_negative - 1.7).abs() < 1e-15);
        assert!((e.accuracy - 0.8).abs() < 1e-15);
        assert!((e.precision - 0.75).abs() < 1e-15);
        assert!((e.recall - 1.5 / 1.8).abs() < 1e-15);
        assert!((e.f1 - 1.5 / 1.9).abs() < 1e-15);
        // ROC AUC: TP path 0, .9, 1.5, 1.7, 1.8 over 1.8; FP path 0, .1, .5, 1.3, 2.2 over 2.2.
        let tpr = [0.0, 0.5, 1.5 / 1.8, 1.7 / 1.8, 1.0];
        let fpr = [0.0, 0.1 / 2.2, 0.5 / 2.2, 1.3 / 2.2, 1.0];
        let want: f64 = (0..4).map(|k| (fpr[k + 1] - fpr[k]) * (tpr[k + 1] + tpr[k]) / 2.0).sum();
        assert!((e.roc_auc.unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn undefined_auc_is_none_and_bad_input_errors() {
        let e = estimate_binary(&[true, false], &[0.0, 0.0], &[0.3, 0.1]).unwrap();
        assert_eq!(e.roc_auc, None);
        assert_eq!(e.precision, 0.0);
        assert!(matches!(estimate_binary(&[true], &[1.2], &[0.3]), Err(PerformanceError::InvalidProbability { .. })));
        assert!(estimate_binary(&[], &[], &[]).is_err());
    }

    #[test]
    fn multiclass_hand_example() {
        let classes = ["a", "b", "c"];
        let pa = [0.7, 0.2, 0.1];
        let pb = [0.2, 0.5, 0.3];
        let pc = [0.1, 0.3, 0.6];
        let cols: [&[f64]; 3] = [&pa, &pb, &pc];
        let e = estimate_multiclass(&["a", "b", "c"], &classes, &cols, &cols).unwrap();
        assert!((e.accuracy - 0.6).abs() < 1e-15);
        // Class a: TP .7, FP .3, FN .3 -> precision .7, recall .7.
        // Class b: TP .5, FP .5, FN .5 -> .5. Class c: TP .6, FP .4, FN .4 -> .6.
        assert!((e.precision - 0.6).abs() < 1e-15);
        assert!((e.recall - 0.6).abs() < 1e-15);
        assert!(estimate_multiclass(&["z", "a", "a"], &classes, &cols, &cols).is_err());
    }
}

//! Realized classification metrics, matching scikit-learn 1.9.1 on the same inputs.
//!
//! Labels are strings (`&[&str]`), one per row; scores are `&[f64]`, one column per class
//! where a function takes several. Counts are exact integers and sums follow numpy's pairwise
//! order ([`crate::stats::np_sum`]), so results agree with scikit-learn to the last few bits.

use std::collections::BTreeSet;

use super::{PerformanceError, Result, finite, non_empty, probabilities, same_len};
use crate::stats::np_sum_by;

/// How precision, recall and F1 treat more than one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average<'a> {
    /// The scores of one positive class; every other label counts as negative.
    ///
    /// Matches `average="binary", pos_label=...` wherever scikit-learn accepts the input
    /// (at most two distinct labels); with more labels scikit-learn raises, this computes
    /// the positive class against the rest.
    Binary(&'a str),
    /// The unweighted mean of the per-class scores over the sorted union of labels seen in
    /// `y_true` and `y_pred` (`average="macro"`).
    Macro,
}

/// Precision, recall and F1 computed together from one pass over the rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionRecallF1 {
    /// `tp / (tp + fp)`, 0 when nothing was predicted positive.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when there are no positives.
    pub recall: f64,
    /// `2·tp / (2·tp + fp + fn)`, 0 when the denominator is 0.
    pub f1: f64,
}

/// Share of rows where the prediction equals the label.
///
/// Matches `sklearn.metrics.accuracy_score(y_true, y_pred)`.
pub fn accuracy(y_true: &[&str], y_pred: &[&str]) -> Result<f64> {
    same_len(y_true.len(), y_pred.len())?;
    non_empty(y_true.len())?;
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / y_true.len() as f64)
}

/// Precision, recall and F1 with `zero_division=0`.
///
/// Per class c: `tp` = rows with label c predicted c, `fp` = predicted c with another label,
/// `fn` = label c predicted otherwise; precision = tp/(tp+fp), recall = tp/(tp+fn),
/// F1 = 2tp/(2tp+fp+fn), each 0 when its denominator is 0. [`Average::Macro`] averages each
/// over the classes. Matches `sklearn.metrics.precision_recall_fscore_support(y_true, y_pred,
/// average=..., pos_label=..., zero_division=0)`.
pub fn precision_recall_f1(y_true: &[&str], y_pred: &[&str], average: Average<'_>) -> Result<PrecisionRecallF1> {
    same_len(y_true.len(), y_pred.len())?;
    non_empty(y_true.len())?;
    match average {
        Average::Binary(pos) => Ok(class_prf(y_true, y_pred, pos)),
        Average::Macro => {
            let labels: BTreeSet<&str> = y_true.iter().chain(y_pred).copied().collect();
            let per_class: Vec<PrecisionRecallF1> = labels.iter().map(|c| class_prf(y_true, y_pred, c)).collect();
            let k = per_class.len();
            let mean = |f: fn(&PrecisionRecallF1) -> f64| np_sum_by(k, |i| f(&per_class[i])) / k as f64;
            Ok(PrecisionRecallF1 { precision: mean(|m| m.precision), recall: mean(|m| m.recall), f1: mean(|m| m.f1) })
        }
    }
}

/// Precision: see [`precision_recall_f1`]; matches `sklearn.metrics.precision_score(...,
/// zero_division=0)`.
pub fn precision(y_true: &[&str], y_pred: &[&str], average: Average<'_>) -> Result<f64> {
    Ok(precision_recall_f1(y_true, y_pred, average)?.precision)
}

/// Recall: see [`precision_recall_f1`]; matches `sklearn.metrics.recall_score(...,
/// zero_division=0)`.
pub fn recall(y_true: &[&str], y_pred: &[&str], average: Average<'_>) -> Result<f64> {
    Ok(precision_recall_f1(y_true, y_pred, average)?.recall)
}

/// F1: see [`precision_recall_f1`]; matches `sklearn.metrics.f1_score(..., zero_division=0)`.
pub fn f1(y_true: &[&str], y_pred: &[&str], average: Average<'_>) -> Result<f64> {
    Ok(precision_recall_f1(y_true, y_pred, average)?.f1)
}

fn class_prf(y_true: &[&str], y_pred: &[&str], class: &str) -> PrecisionRecallF1 {
    let (mut tp, mut fp, mut fneg) = (0u64, 0u64, 0u64);
    for (t, p) in y_true.iter().zip(y_pred) {
        match (*t == class, *p == class) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            (false, false) => {}
        }
    }
    let div = |num: u64, den: u64| if den == 0 { 0.0 } else { num as f64 / den as f64 };
    PrecisionRecallF1 { precision: div(tp, tp + fp), recall: div(tp, tp + fneg), f1: div(2 * tp, 2 * tp + fp + fneg) }
}

/// Area under the ROC curve of `scores` for the class `pos_label` against all others.
///
/// Rows are taken in decreasing score; each distinct score is one point of the curve (tied
/// scores move along the diagonal of their block), and the area is the trapezoidal sum, which
/// equals the Mann–Whitney probability that a positive outscores a negative with ties counted
/// one half. Matches `sklearn.metrics.roc_auc_score(y_true == pos_label, scores)`.
/// [`PerformanceError::Undefined`] when only one class is present (scikit-learn raises).
pub fn roc_auc(y_true: &[&str], scores: &[f64], pos_label: &str) -> Result<f64> {
    same_len(y_true.len(), scores.len())?;
    let positive: Vec<bool> = y_true.iter().map(|t| *t == pos_label).collect();
    binary_roc_auc(&positive, scores)
}

/// [`roc_auc`] over a boolean "is positive" column.
pub fn binary_roc_auc(positive: &[bool], scores: &[f64]) -> Result<f64> {
    same_len(positive.len(), scores.len())?;
    non_empty(scores.len())?;
    finite(scores)?;
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(PerformanceError::Undefined("ROC AUC needs both classes in y_true"));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    // Twice the area in units of one positive × one negative, exact in integers up to 2^53.
    let (mut tp, mut fp, mut area2) = (0u64, 0u64, 0f64);
    let mut i = 0;
    while i < order.len() {
        let (tp0, fp0) = (tp, fp);
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if positive[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        area2 += ((fp - fp0) as f64) * ((tp + tp0) as f64);
    }
    Ok(area2 / 2.0 / (n_pos as f64 * n_neg as f64))
}

/// One-vs-rest ROC AUC averaged over classes without weights.
///
/// `scores[k]` is the score column of `classes[k]`; each class's AUC is [`binary_roc_auc`] of
/// "label is `classes[k]`" against `scores[k]`. Matches `sklearn.metrics.roc_auc_score(y_true,
/// proba, multi_class="ovr", average="macro", labels=classes)`, including its requirement
/// that every row sums to 1 (`np.allclose`: |1 − Σ| ≤ 1e-8 + 1e-5·|Σ|), else
/// [`PerformanceError::Undefined`]. Also errors when a label is not in `classes` or a class
/// has no positive or no negative row.
pub fn roc_auc_ovr_macro(y_true: &[&str], classes: &[&str], scores: &[&[f64]]) -> Result<f64> {
    same_len(classes.len(), scores.len())?;
    if classes.len() < 2 {
        return Err(PerformanceError::Undefined("ROC AUC needs at least two classes"));
    }
    for col in scores {
        same_len(y_true.len(), col.len())?;
    }
    check_known(y_true, classes)?;
    for col in scores {
        finite(col)?;
    }
    let rows_are_probabilities = (0..y_true.len()).all(|i| {
        let sum: f64 = scores.iter().map(|col| col[i]).sum();
        (1.0 - sum).abs() <= 1e-8 + 1e-5 * sum.abs()
    });
    if !rows_are_probabilities {
        return Err(PerformanceError::Undefined("multiclass ROC AUC needs rows of probabilities summing to 1"));
    }
    let aucs = classes
        .iter()
        .zip(scores)
        .map(|(c, col)| {
            let positive: Vec<bool> = y_true.iter().map(|t| t == c).collect();
            binary_roc_auc(&positive, col)
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(np_sum_by(aucs.len(), |i| aucs[i]) / aucs.len() as f64)
}

/// Mean negative log-likelihood of the labels under per-class probabilities.
///
/// `proba[k]` is the probability column of `classes[k]`. Each probability is clipped to
/// `[ε, 1 − ε]` with ε = `f64::EPSILON` (2.22e-16, numpy's `finfo(float64).eps`) and not
/// renormalised; the loss is `−mean_i ln p_i(y_i)`. Matches `sklearn.metrics.log_loss(y_true,
/// proba, labels=classes)` in 1.9.1, which clips the same way and only warns when rows do not
/// sum to 1. Errors when a probability is outside `[0, 1]` or NaN, or a label is unknown.
pub fn log_loss(y_true: &[&str], classes: &[&str], proba: &[&[f64]]) -> Result<f64> {
    same_len(classes.len(), proba.len())?;
    if classes.len() < 2 {
        return Err(PerformanceError::Undefined("log loss needs at least two classes"));
    }
    non_empty(y_true.len())?;
    for col in proba {
        same_len(y_true.len(), col.len())?;
        probabilities(col)?;
    }
    let idx = check_known(y_true, classes)?;
    let n = y_true.len();
    let sum = np_sum_by(n, |i| -clip_eps(proba[idx[i]][i]).ln());
    Ok(sum / n as f64)
}

/// Binary log loss from the positive class's probability column.
///
/// The negative class gets `1 − p` (computed before clipping, as scikit-learn does for a 1-d
/// `y_prob`); otherwise as [`log_loss`]. Matches `sklearn.metrics.log_loss(y_true == pos_label,
/// proba_pos, labels=[False, True])`.
pub fn log_loss_binary(y_true: &[&str], proba_pos: &[f64], pos_label: &str) -> Result<f64> {
    same_len(y_true.len(), proba_pos.len())?;
    non_empty(y_true.len())?;
    probabilities(proba_pos)?;
    let n = y_true.len();
    let sum = np_sum_by(n, |i| {
        let p = if y_true[i] == pos_label { proba_pos[i] } else { 1.0 - proba_pos[i] };
        -clip_eps(p).ln()
    });
    Ok(sum / n as f64)
}

fn clip_eps(p: f64) -> f64 {
    p.clamp(f64::EPSILON, 1.0 - f64::EPSILON)
}

/// Index into `classes` of every label; [`PerformanceError::UnknownLabel`] for the first miss.
fn check_known(y_true: &[&str], classes: &[&str]) -> Result<Vec<usize>> {
    y_true
        .iter()
        .enumerate()
        .map(|(row, t)| {
            classes
                .iter()
                .position(|c| c == t)
                .ok_or_else(|| PerformanceError::UnknownLabel { row, label: (*t).to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_matches() {
        assert_eq!(accuracy(&["a", "b", "a", "c"], &["a", "b", "b", "c"]), Ok(0.75));
        assert_eq!(accuracy(&[], &[]), Err(PerformanceError::Empty));
        assert!(matches!(accuracy(&["a"], &[]), Err(PerformanceError::LengthMismatch { .. })));
    }

    #[test]
    fn binary_and_macro_prf() {
        let t = ["1", "1", "0", "0", "1"];
        let p = ["1", "0", "1", "0", "1"];
        let m = precision_recall_f1(&t, &p, Average::Binary("1")).unwrap();
        assert_eq!(m.precision, 2.0 / 3.0);
        assert_eq!(m.recall, 2.0 / 3.0);
        assert_eq!(m.f1, 4.0 / 6.0);
        // Class "0": tp 1, fp 1, fn 1 -> 0.5 each. Macro: mean of 2/3 and 1/2.
        let m = precision_recall_f1(&t, &p, Average::Macro).unwrap();
        assert!((m.precision - (2.0 / 3.0 + 0.5) / 2.0).abs() < 1e-15);
        // Nothing predicted positive: zero_division = 0.
        let m = precision_recall_f1(&["1", "0"], &["0", "0"], Average::Binary("1")).unwrap();
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn auc_with_ties_counts_half() {
        // One positive tied with one negative, one positive above all: (1 + 0.5·1 + ...) —
        // pairs: (p1=0.9 > n 0.5, n 0.1), (p2=0.5 = n 0.5 → ½, > n 0.1) → 3.5 / 4.
        let auc = binary_roc_auc(&[true, true, false, false], &[0.9, 0.5, 0.5, 0.1]).unwrap();
        assert_eq!(auc, 3.5 / 4.0);
        assert!(matches!(binary_roc_auc(&[true, true], &[0.1, 0.2]), Err(PerformanceError::Undefined(_))));
        assert!(matches!(
            binary_roc_auc(&[true, false], &[f64::NAN, 0.2]),
            Err(PerformanceError::NonFinite { row: 0 })
        ));
    }

    #[test]
    fn log_loss_clips_certain_mistakes() {
        let l = log_loss_binary(&["a", "b"], &[1.0, 1.0], "a").unwrap();
        assert!((l - (-(f64::EPSILON).ln() / 2.0)).abs() < 1e-12);
        assert!(matches!(log_loss_binary(&["a"], &[1.5], "a"), Err(PerformanceError::InvalidProbability { .. })));
        let l = log_loss(&["x", "y"], &["x", "y"], &[&[0.8, 0.3], &[0.2, 0.7]]).unwrap();
        assert!((l - (-(0.8f64.ln() + 0.7f64.ln()) / 2.0)).abs() < 1e-15);
        assert!(matches!(
            log_loss(&["z"], &["x", "y"], &[&[0.5], &[0.5]]),
            Err(PerformanceError::UnknownLabel { row: 0, .. })
        ));
    }
}

//! Turning a classifier's scores into calibrated probabilities, fitted on reference data.
//!
//! [`IsotonicCalibrator`] is scikit-learn's `IsotonicRegression(out_of_bounds="clip",
//! increasing=True)`, the calibrator NannyML's CBPE uses. [`Calibration::fit`] decides whether
//! to use it ("calibration when it helps") with [`needs_calibration`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{PerformanceError, Result, finite, non_empty, same_len};
use crate::performance::classification::binary_roc_auc;

/// numpy's `finfo(float64).resolution`: scikit-learn merges scores closer than this.
const MERGE_RESOLUTION: f64 = 1e-15;

/// A fitted isotonic (monotone non-decreasing, piecewise linear) map from score to probability.
///
/// Fit: rows sorted by score (then target), scores closer than 1e-15 merged into one point
/// with the mean target and the summed weight, then the pool-adjacent-violators algorithm
/// gives the weighted least-squares non-decreasing fit; interior points equal to both
/// neighbours are dropped. Predict: the score is clipped to the fitted range, then
/// interpolated linearly between the fitted points (scipy `interp1d`'s arithmetic).
/// Matches `sklearn.isotonic.IsotonicRegression(out_of_bounds="clip").fit(x, y).predict(t)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsotonicCalibrator {
    /// Ascending scores of the fitted points (`X_thresholds_`).
    pub x: Vec<f64>,
    /// Fitted probabilities at [`Self::x`] (`y_thresholds_`), non-decreasing.
    pub y: Vec<f64>,
}

impl IsotonicCalibrator {
    /// Fits the map from `scores` to `targets` (0/1 for calibration; any finite reals work).
    pub fn fit(scores: &[f64], targets: &[f64]) -> Result<Self> {
        same_len(scores.len(), targets.len())?;
        non_empty(scores.len())?;
        finite(scores)?;
        finite(targets)?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(targets[a].total_cmp(&targets[b])));
        // _make_unique: group scores within MERGE_RESOLUTION of each group's first score.
        let (mut ux, mut uy, mut uw) = (Vec::new(), Vec::new(), Vec::new());
        let mut cur_x = scores[order[0]];
        let (mut cur_y, mut cur_w) = (0.0, 0.0);
        for &i in &order {
            let x = scores[i];
            if x - cur_x >= MERGE_RESOLUTION {
                ux.push(cur_x);
                uw.push(cur_w);
                uy.push(cur_y / cur_w);
                cur_x = x;
                cur_w = 1.0;
                cur_y = targets[i];
            } else {
                cur_w += 1.0;
                cur_y += targets[i];
            }
        }
        ux.push(cur_x);
        uw.push(cur_w);
        uy.push(cur_y / cur_w);

        let fitted = pava(&uy, &uw);
        // Drop interior points equal to both neighbours: same interpolant, fewer points.
        let n = fitted.len();
        let (mut x, mut y) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let keep = i == 0 || i == n - 1 || fitted[i] != fitted[i - 1] || fitted[i] != fitted[i + 1];
            if keep {
                x.push(ux[i]);
                y.push(fitted[i]);
            }
        }
        Ok(Self { x, y })
    }

    /// [`Self::fit`] with boolean targets (`true` = positive class).
    pub fn fit_binary(scores: &[f64], positive: &[bool]) -> Result<Self> {
        let targets: Vec<f64> = positive.iter().map(|p| f64::from(u8::from(*p))).collect();
        Self::fit(scores, &targets)
    }

    /// The calibrated value of one score; NaN stays NaN.
    pub fn predict_one(&self, score: f64) -> f64 {
        let n = self.x.len();
        if n == 0 || score.is_nan() {
            return f64::NAN;
        }
        if n == 1 {
            return self.y[0];
        }
        let t = score.clamp(self.x[0], self.x[n - 1]);
        let idx = self.x.partition_point(|v| *v < t).clamp(1, n - 1);
        let (lo, hi) = (idx - 1, idx);
        let slope = (self.y[hi] - self.y[lo]) / (self.x[hi] - self.x[lo]);
        slope * (t - self.x[lo]) + self.y[lo]
    }

    /// Calibrated values of `scores`; [`PerformanceError::NonFinite`] on NaN.
    pub fn predict(&self, scores: &[f64]) -> Result<Vec<f64>> {
        if let Some(row) = scores.iter().position(|s| s.is_nan()) {
            return Err(PerformanceError::NonFinite { row });
        }
        Ok(scores.iter().map(|s| self.predict_one(*s)).collect())
    }
}

/// Pool adjacent violators: weighted non-decreasing least-squares fit of `y`.
fn pava(y: &[f64], w: &[f64]) -> Vec<f64> {
    // Blocks as (sum of w·y, sum of w, row count); merged while the previous mean is not below.
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(y.len());
    for (yi, wi) in y.iter().zip(w) {
        let mut cur = (yi * wi, *wi, 1usize);
        while let Some(&(ps, pw, pc)) = blocks.last() {
            if ps / pw >= cur.0 / cur.1 {
                blocks.pop();
                cur = (ps + cur.0, pw + cur.1, pc + cur.2);
            } else {
                break;
            }
        }
        blocks.push(cur);
    }
    let mut out = Vec::with_capacity(y.len());
    for (s, wsum, c) in blocks {
        out.extend(std::iter::repeat_n(s / wsum, c));
    }
    out
}

/// Expected calibration error over equal-count bins, as NannyML computes it.
///
/// Rows sorted by probability are cut into `bins` bins of `n / bins` rows (the last takes the
/// remainder; with `n ≤ 2·bins`, `n / 2` bins), and ECE = Σ_b (|b| / n) · |mean p_b − mean y_b|.
/// Matches `nannyml.calibration._calculate_expected_calibration_error` with
/// `_get_bin_index_edges(n, bins)`, up to the order of rows with tied probabilities.
/// [`PerformanceError::Undefined`] when fewer than two bins fit.
pub fn expected_calibration_error(proba: &[f64], positive: &[bool], bins: usize) -> Result<f64> {
    same_len(proba.len(), positive.len())?;
    non_empty(proba.len())?;
    finite(proba)?;
    let n = proba.len();
    let mut count = bins;
    if n <= 2 * count {
        count = n / 2;
    }
    if count < 2 {
        return Err(PerformanceError::Undefined("expected calibration error needs at least two bins of two rows"));
    }
    let width = n / count;
    let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
    if let Some(last) = edges.last_mut() {
        *last = n;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| proba[a].total_cmp(&proba[b]));
    let mut ece = 0.0;
    for pair in edges.windows(2) {
        let rows = &order[pair[0]..pair[1]];
        if rows.is_empty() {
            continue;
        }
        let len = rows.len() as f64;
        let mean_p = rows.iter().map(|&i| proba[i]).sum::<f64>() / len;
        let mean_y = rows.iter().filter(|&&i| positive[i]).count() as f64 / len;
        ece += len / n as f64 * (mean_p - mean_y).abs();
    }
    Ok(ece)
}

/// Number of cross-validation folds [`needs_calibration`] uses.
pub const CALIBRATION_FOLDS: usize = 10;
/// Number of equal-count bins of the ECE [`needs_calibration`] compares.
pub const CALIBRATION_BINS: usize = 10;

/// Whether isotonic calibration lowers the expected calibration error on held-out reference
/// rows ("calibrate when it helps").
///
/// The rule follows NannyML's `needs_calibration`: `false` when the reference holds one class
/// only, or when its ROC AUC exceeds 0.999 (scores already separate the classes); otherwise
/// isotonic calibration is fitted on all folds but one and applied to the held-out fold, for
/// each of [`CALIBRATION_FOLDS`] folds, and the answer is whether the ECE
/// ([`CALIBRATION_BINS`] bins) of the pooled held-out scores is strictly larger before
/// calibration than after. Unlike NannyML, whose ten 10% test splits are drawn by a seeded
/// `StratifiedShuffleSplit`, the folds here are deterministic and stratified: the j-th row of
/// each class goes to fold `j mod 10`, so every row is held out exactly once. Borderline cases
/// can therefore decide differently from NannyML. Fewer than 4 rows: `false`.
pub fn needs_calibration(scores: &[f64], positive: &[bool]) -> Result<bool> {
    same_len(scores.len(), positive.len())?;
    non_empty(scores.len())?;
    finite(scores)?;
    let n = scores.len();
    let n_pos = positive.iter().filter(|p| **p).count();
    if n_pos == 0 || n_pos == n || n < 4 {
        return Ok(false);
    }
    if binary_roc_auc(positive, scores)? > 0.999 {
        return Ok(false);
    }
    let (mut seen_pos, mut seen_neg) = (0usize, 0usize);
    let fold: Vec<usize> = positive
        .iter()
        .map(|p| {
            let c = if *p { &mut seen_pos } else { &mut seen_neg };
            *c += 1;
            (*c - 1) % CALIBRATION_FOLDS
        })
        .collect();
    let mut held_scores = Vec::with_capacity(n);
    let mut held_calibrated = Vec::with_capacity(n);
    let mut held_labels = Vec::with_capacity(n);
    for k in 0..CALIBRATION_FOLDS {
        let test: Vec<usize> = (0..n).filter(|&i| fold[i] == k).collect();
        if test.is_empty() {
            continue;
        }
        let (train_x, train_y): (Vec<f64>, Vec<bool>) =
            (0..n).filter(|&i| fold[i] != k).map(|i| (scores[i], positive[i])).unzip();
        if train_x.is_empty() {
            continue;
        }
        let cal = IsotonicCalibrator::fit_binary(&train_x, &train_y)?;
        for i in test {
            held_scores.push(scores[i]);
            held_calibrated.push(cal.predict_one(scores[i]));
            held_labels.push(positive[i]);
        }
    }
    let before = expected_calibration_error(&held_scores, &held_labels, CALIBRATION_BINS)?;
    let after = expected_calibration_error(&held_calibrated, &held_labels, CALIBRATION_BINS)?;
    Ok(before > after)
}

/// The calibration chosen for one score column on the reference: isotonic or none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Calibration {
    /// Scores are used as they are.
    Identity,
    /// Scores go through a fitted isotonic map.
    Isotonic(IsotonicCalibrator),
}

impl Calibration {
    /// Fits isotonic calibration on reference `scores` and labels, kept only when
    /// [`needs_calibration`] says it helps (NannyML's `CBPE.fit` rule).
    pub fn fit(scores: &[f64], positive: &[bool]) -> Result<Self> {
        if needs_calibration(scores, positive)? {
            Ok(Self::Isotonic(IsotonicCalibrator::fit_binary(scores, positive)?))
        } else {
            Ok(Self::Identity)
        }
    }

    /// Calibrated probabilities of `scores`; [`PerformanceError::NonFinite`] on NaN.
    pub fn apply(&self, scores: &[f64]) -> Result<Vec<f64>> {
        match self {
            Self::Identity => {
                finite(scores)?;
                Ok(scores.to_vec())
            }
            Self::Isotonic(c) => c.predict(scores),
        }
    }
}

/// One-vs-rest calibration of a multiclass model's per-class scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MulticlassCalibration {
    /// The classes, in the order of [`Self::per_class`] and of the score columns.
    pub classes: Vec<String>,
    /// One [`Calibration`] per class, fitted on "label is this class" against its column.
    pub per_class: Vec<Calibration>,
}

impl MulticlassCalibration {
    /// Fits one [`Calibration`] per class on the reference (`scores[k]` is `classes[k]`'s
    /// column), as NannyML's `_fit_calibrators`.
    pub fn fit(y_true: &[&str], classes: &[&str], scores: &[&[f64]]) -> Result<Self> {
        same_len(classes.len(), scores.len())?;
        let distinct: BTreeSet<&str> = classes.iter().copied().collect();
        if distinct.len() != classes.len() || classes.len() < 2 {
            return Err(PerformanceError::Undefined("multiclass calibration needs at least two distinct classes"));
        }
        let per_class = classes
            .iter()
            .zip(scores)
            .map(|(c, col)| {
                same_len(y_true.len(), col.len())?;
                let positive: Vec<bool> = y_true.iter().map(|t| t == c).collect();
                Calibration::fit(col, &positive)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { classes: classes.iter().map(|c| (*c).to_string()).collect(), per_class })
    }

    /// Calibrates each column, then divides each row by its sum (a row summing to 0 becomes
    /// uniform), as NannyML's `_calibrate_predicted_probabilities`. Returns one column per
    /// class.
    pub fn apply(&self, scores: &[&[f64]]) -> Result<Vec<Vec<f64>>> {
        same_len(self.per_class.len(), scores.len())?;
        let n = scores.first().map_or(0, |c| c.len());
        let mut cols = self
            .per_class
            .iter()
            .zip(scores)
            .map(|(cal, col)| {
                same_len(n, col.len())?;
                cal.apply(col)
            })
            .collect::<Result<Vec<_>>>()?;
        let k = cols.len();
        for i in 0..n {
            let sum: f64 = cols.iter().map(|c| c[i]).sum();
            for col in cols.iter_mut() {
                col[i] = if sum != 0.0 { col[i] / sum } else { 1.0 / k as f64 };
            }
        }
        Ok(cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_interpolates() {
        // Targets 0,1,0,1 at scores 1..4: the middle pair pools to 0.5.
        let c = IsotonicCalibrator::fit(&[1.0, 2.0, 3.0, 4.0], &[0.0, 1.0, 0.0, 1.0]).unwrap();
        assert_eq!(c.predict(&[1.0, 2.0, 3.0, 4.0]).unwrap(), vec![0.0, 0.5, 0.5, 1.0]);
        assert_eq!(c.predict_one(1.5), 0.25);
        // Clipped outside the fitted range.
        assert_eq!(c.predict_one(-10.0), 0.0);
        assert_eq!(c.predict_one(10.0), 1.0);
        // Tied scores are averaged first.
        let c = IsotonicCalibrator::fit(&[0.5, 0.5, 0.5], &[1.0, 0.0, 0.0]).unwrap();
        assert_eq!(c.predict_one(0.9), 1.0 / 3.0);
        assert!(IsotonicCalibrator::fit(&[], &[]).is_err());
    }

    #[test]
    fn ece_of_perfectly_calibrated_bins_is_zero() {
        let p = [0.0, 0.0, 1.0, 1.0];
        let y = [false, false, true, true];
        assert_eq!(expected_calibration_error(&p, &y, 10), Ok(0.0));
        let p = [0.5, 0.5, 0.5, 0.5];
        assert_eq!(expected_calibration_error(&p, &y, 2), Ok(0.5));
    }

    #[test]
    fn calibration_kept_only_when_it_helps() {
        // Scores far from the truth (the positive rate at score s is s², not s).
        let n = 4000;
        let scores: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect();
        let positive: Vec<bool> =
            scores.iter().enumerate().map(|(i, s)| ((i * 7919) % 1000) as f64 / 1000.0 < s * s).collect();
        assert!(needs_calibration(&scores, &positive).unwrap());
        assert!(matches!(Calibration::fit(&scores, &positive).unwrap(), Calibration::Isotonic(_)));
        // Separable scores need none.
        let positive: Vec<bool> = scores.iter().map(|s| *s > 0.5).collect();
        assert!(!needs_calibration(&scores, &positive).unwrap());
        assert!(!needs_calibration(&scores, &vec![true; n]).unwrap());
    }
}

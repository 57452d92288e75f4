//! A window's performance: label coverage and delay, realized metrics on the labeled rows, and,
//! for binary classifiers with scores, metrics estimated before labels arrive (CBPE, calibrated
//! on the reference when that helps). Realized metrics carry the reference's own value, so the
//! decay ratio is window over reference.

use std::collections::BTreeMap;

use anchorwatch_collector::schema::{ModelSchema, ValueKind};

use super::config::AnalysisConfig;
use super::data::{Column, Frame};
use super::reference::Reference;
use super::window::PerformanceRow;
use crate::performance::{self as perf, Average, BinaryCbpe, StdMultipliers, Threshold, ValueRange};

fn numbers<'a>(frame: &'a Frame, name: &str) -> Option<&'a [f64]> {
    match frame.get(name)? {
        Column::Numbers(v) => Some(v),
        Column::Strings(_) | Column::Vectors(_) => None,
    }
}

fn strings<'a>(frame: &'a Frame, name: &str) -> Option<Vec<Option<&'a str>>> {
    match frame.get(name)? {
        Column::Strings(a) => Some(a.iter().collect()),
        Column::Numbers(_) | Column::Vectors(_) => None,
    }
}

/// The positive class of a binary classifier: configured, else the last declared score class,
/// else `true` for boolean predictions.
pub fn positive_class(schema: &ModelSchema, config: &AnalysisConfig) -> Option<String> {
    config
        .positive_class
        .clone()
        .or_else(|| (schema.scores.len() == 2).then(|| schema.scores[1].clone()))
        .or_else(|| (schema.prediction == ValueKind::Boolean).then(|| "true".to_string()))
}

/// Realized metrics over the rows of `frame` that have both a prediction and a label.
pub fn realized(frame: &Frame, schema: &ModelSchema, config: &AnalysisConfig) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if schema.prediction == ValueKind::Numerical {
        let (Some(y), Some(p)) = (numbers(frame, "label"), numbers(frame, "prediction")) else { return out };
        let (y, p): (Vec<f64>, Vec<f64>) =
            y.iter().zip(p).filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(a, b)| (*a, *b)).unzip();
        for (name, f) in [
            ("mae", perf::mae as fn(&[f64], &[f64]) -> _),
            ("rmse", perf::rmse),
            ("mape", perf::mape),
            ("r2", perf::r2),
        ] {
            if let Ok(v) = f(&y, &p) {
                out.insert(name.to_string(), v);
            }
        }
        return out;
    }
    let (Some(y), Some(p)) = (strings(frame, "label"), strings(frame, "prediction")) else { return out };
    let positive = positive_class(schema, config);
    // Scores travel with the rows; keep the ones whose label and prediction are present.
    let keep: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_some() && p[i].is_some()).collect();
    let y_true: Vec<&str> = keep.iter().map(|&i| y[i].unwrap_or_default()).collect();
    let y_pred: Vec<&str> = keep.iter().map(|&i| p[i].unwrap_or_default()).collect();
    if y_true.is_empty() {
        return out;
    }
    if let Ok(v) = perf::accuracy(&y_true, &y_pred) {
        out.insert("accuracy".into(), v);
    }
    let average = positive.as_deref().map_or(Average::Macro, Average::Binary);
    if let Ok(prf) = perf::precision_recall_f1(&y_true, &y_pred, average) {
        out.insert("precision".into(), prf.precision);
        out.insert("recall".into(), prf.recall);
        out.insert("f1".into(), prf.f1);
    }
    if let Some(pos) = &positive {
        if let Some(scores) = numbers(frame, &ModelSchema::score_column(pos)) {
            let s: Vec<f64> = keep.iter().map(|&i| scores[i]).collect();
            if s.iter().all(|x| x.is_finite()) {
                if let Ok(v) = perf::roc_auc(&y_true, &s, pos) {
                    out.insert("roc_auc".into(), v);
                }
                if let Ok(v) = perf::log_loss_binary(&y_true, &s, pos) {
                    out.insert("log_loss".into(), v);
                }
            }
        }
    }
    out
}

/// The CBPE estimator fitted on the reference, for binary classifiers with a positive-class score.
pub fn fit_cbpe(reference: &Frame, schema: &ModelSchema, config: &AnalysisConfig) -> Option<BinaryCbpe> {
    let pos = positive_class(schema, config)?;
    let scores = numbers(reference, &ModelSchema::score_column(&pos))?;
    let labels = strings(reference, "label")?;
    let (s, positive): (Vec<f64>, Vec<bool>) = scores
        .iter()
        .zip(&labels)
        .filter_map(|(s, l)| (s.is_finite() && l.is_some()).then(|| (*s, *l == Some(pos.as_str()))))
        .unzip();
    if s.is_empty() {
        return None;
    }
    match BinaryCbpe::fit(&s, &positive) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot fit performance estimation on the reference");
            None
        }
    }
}

fn estimated(frame: &Frame, cbpe: &BinaryCbpe, schema: &ModelSchema, config: &AnalysisConfig) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some(pos) = positive_class(schema, config) else { return out };
    let (Some(scores), Some(pred)) = (numbers(frame, &ModelSchema::score_column(&pos)), strings(frame, "prediction"))
    else {
        return out;
    };
    let (s, predicted): (Vec<f64>, Vec<bool>) = scores
        .iter()
        .zip(&pred)
        .filter_map(|(s, p)| (s.is_finite() && p.is_some()).then(|| (*s, *p == Some(pos.as_str()))))
        .unzip();
    if s.is_empty() {
        return out;
    }
    if let Ok(e) = cbpe.estimate(&predicted, &s) {
        out.insert("accuracy".into(), e.accuracy);
        out.insert("precision".into(), e.precision);
        out.insert("recall".into(), e.recall);
        out.insert("f1".into(), e.f1);
        if let Some(auc) = e.roc_auc {
            out.insert("roc_auc".into(), auc);
        }
    }
    out
}

/// Label coverage and delay, then realized and estimated metrics.
pub fn window_performance(
    current: &Frame,
    reference: &Reference,
    schema: &ModelSchema,
    config: &AnalysisConfig,
) -> Vec<PerformanceRow> {
    let mut rows = Vec::new();
    let baseline = reference.performance(schema, config);
    let row = |metric: &str, kind: &str, value: f64, reference: Option<f64>| {
        let threshold = (kind != "estimate_error").then(|| baseline.thresholds.get(metric)).flatten();
        PerformanceRow {
            metric: metric.into(),
            kind: kind.into(),
            value,
            reference,
            lower: threshold.and_then(|t| t.lower),
            upper: threshold.and_then(|t| t.upper),
            breached: threshold.map(|t| t.breached(value)),
        }
    };
    let Some(label) = current.get("label") else { return rows };
    let labeled = label.len() - label.missing();
    let coverage = if current.rows == 0 { 0.0 } else { labeled as f64 / current.rows as f64 };
    rows.push(row("label_coverage", "realized", coverage, None));
    if let (Some(t), Some(lt)) = (numbers(current, "timestamp"), numbers(current, "label_timestamp")) {
        let delays: Vec<f64> =
            t.iter().zip(lt).filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(a, b)| (b - a) / 1e6).collect();
        if !delays.is_empty() {
            rows.push(row("label_delay_seconds", "realized", delays.iter().sum::<f64>() / delays.len() as f64, None));
        }
    }
    let realized = realized(current, schema, config);
    for (metric, value) in &realized {
        rows.push(row(metric, "realized", *value, baseline.realized.get(metric).copied()));
    }
    if let Some(cbpe) = &baseline.cbpe {
        for (metric, value) in estimated(current, cbpe, schema, config) {
            rows.push(row(&metric, "estimated", value, baseline.realized.get(&metric).copied()));
            // Once labels fill in, how far the estimate was from what happened.
            if let Some(actual) = realized.get(&metric) {
                rows.push(row(&metric, "estimate_error", value - actual, None));
            }
        }
    }
    rows
}

/// The reference's own performance and the estimator fitted on it, computed once per reference.
#[derive(Debug, Default)]
pub struct Baseline {
    /// Realized metrics on the reference's labeled rows.
    pub realized: BTreeMap<String, f64>,
    /// CBPE fitted on the reference (binary classifiers with scores and labels).
    pub cbpe: Option<BinaryCbpe>,
    /// The configured thresholds, calibrated ones computed on reference chunks.
    pub thresholds: BTreeMap<String, Threshold>,
}

/// Where a metric's values can lie, so a calibrated bound never leaves it.
fn range_of(metric: &str) -> ValueRange {
    match metric {
        "log_loss" | "mae" | "rmse" | "mape" | "label_delay_seconds" => ValueRange::NON_NEGATIVE,
        "r2" => ValueRange::AT_MOST_ONE,
        _ => ValueRange::UNIT,
    }
}

/// Each configured threshold: constant, or calibrated as mean ± k·std of the metric over
/// equal chunks of the reference.
pub fn thresholds(reference: &Frame, schema: &ModelSchema, config: &AnalysisConfig) -> BTreeMap<String, Threshold> {
    let mut out = BTreeMap::new();
    for (metric, t) in &config.thresholds {
        let mut threshold = Threshold::constant(t.lower, t.upper);
        if t.calibrate {
            let size = reference.rows / t.chunks;
            let values: Vec<f64> = (0..t.chunks)
                .filter(|_| size > 0)
                .map(|i| {
                    let chunk = reference.slice(i * size, size);
                    realized(&chunk, schema, config).get(metric).copied().unwrap_or(f64::NAN)
                })
                .collect();
            let k = StdMultipliers { lower: Some(t.std_multiplier), upper: Some(t.std_multiplier) };
            match Threshold::from_reference(&values, k, range_of(metric)) {
                Ok(c) => {
                    threshold = Threshold { lower: t.lower.or(c.lower), upper: t.upper.or(c.upper) };
                }
                Err(e) => {
                    tracing::warn!(metric = %metric, error = %e, "cannot calibrate the threshold on the reference");
                    continue;
                }
            }
        }
        out.insert(metric.clone(), threshold);
    }
    out
}

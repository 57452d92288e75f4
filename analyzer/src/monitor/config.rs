//! `[models.analysis]`: how a model's traffic is analysed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anchorwatch_collector::config::units;
use serde::{Deserialize, Serialize};

use crate::drift::StatTest;
use crate::stats::embedding_drift::Spec;

/// Analysis settings of one model. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    /// Whether the model is analysed continuously. Default `true`.
    pub enabled: bool,
    /// Reference data (Parquet or CSV, relative to the config file) with the feature columns, and
    /// optionally the prediction, target and `score_<class>` columns. Default: none, and the first
    /// `reference_rows` collected predictions become the reference. A reference uploaded through
    /// `POST /v1/models/{model}/reference` replaces either.
    pub reference: Option<PathBuf>,
    /// In the reference file, the column holding the prediction. Default `"prediction"`.
    pub reference_prediction_column: String,
    /// In the reference file, the column holding the true label. Default `"target"`.
    pub reference_target_column: String,
    /// Rows of collected traffic that become the reference when no file is given. Default `1000`.
    pub reference_rows: usize,
    /// When no reference file is given: the first this-long span of event time becomes the
    /// reference (once traffic reaches past it), instead of the first `reference_rows` rows.
    /// Default: none. Example: `"1d"`.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub reference_span: Option<Duration>,
    /// Length of the tumbling event-time windows (stored with `window = "tumbling"`). Default
    /// `"1h"` unless `window_rows` is given. Example: `"15m"`.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Tumbling windows by row count instead of event time: consecutive blocks of this many rows
    /// in (timestamp, prediction_id) order; the last, incomplete block is the current window.
    /// Stored with `window = "rows"` and the block's number in `window_index`. Not together with
    /// `window`. Default: none. Example: `10000`.
    pub window_rows: Option<usize>,
    /// Also analyse the latest this-many rows (by event time) as one rolling window, recomputed
    /// whenever new data arrives; stored with `window = "rolling"`. Default: none.
    pub rolling_rows: Option<usize>,
    /// How often new data is looked for. Default `"30s"`.
    #[serde(with = "units::duration")]
    pub interval: Duration,
    /// Windows starting longer ago than this are no longer recomputed when late labels arrive.
    /// Default `"7d"`.
    #[serde(with = "units::duration")]
    pub label_lookback: Duration,
    /// Share of drifted columns at which the dataset counts as drifted. Default `0.5` (Evidently's).
    pub drift_share: f64,
    /// Features exported as Prometheus series per model, in schema order; the results tables
    /// keep every feature. Default `100`.
    pub max_exported_features: usize,
    /// For binary classification: the class counted as positive (precision, recall, F1, ROC AUC).
    /// Default: the last class in `schema.scores`, else the lexically last label seen.
    pub positive_class: Option<String>,
    /// Event-time windows are analysed from per-file profiles (docs/store.md): each stored file
    /// is profiled once, beside it, and a window merges its files' profiles, reading raw rows
    /// only for the columns a profile cannot settle (and for performance), so re-analysing a
    /// window costs what its new files cost. Count-based tests and data quality are exact;
    /// `wasserstein` scores are within a documented bound of the exact ones, and a column whose
    /// verdict that bound leaves open is read raw, so verdicts are always the exact ones.
    /// Row-count and rolling windows always read rows. Default `false`.
    pub profiles: bool,
    /// Multivariate drift of the tabular features together (NannyML's data reconstruction
    /// error, docs/drift.md), for models with at least two numerical, categorical or boolean
    /// features. With `profiles`, it reads those features' rows of each window. Default `true`.
    pub multivariate: bool,
    /// Also NannyML's domain classifier over the same features (docs/drift.md): the
    /// cross-validated ROC AUC of gradient-boosted trees telling the window's rows from the
    /// reference's, drift outside 0.45–0.65. It trains 5 classifiers per window (and 50 once per
    /// reference), so it is off unless turned on. Default `false`.
    pub domain_classifier: bool,
    /// Per-column overrides: `columns.age = { stattest = "psi", threshold = 0.2 }`.
    pub columns: BTreeMap<String, ColumnOverride>,
    /// Per-metric performance thresholds, constant or calibrated on the reference:
    /// `thresholds.accuracy = { calibrate = true }`, `thresholds.label_coverage = { lower = 0.5 }`.
    /// They apply to realized and estimated values alike; a value outside is `breached`.
    pub thresholds: BTreeMap<String, MetricThreshold>,
}

/// A performance metric's acceptable range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricThreshold {
    /// Constant lower bound. Example: `0.8`.
    pub lower: Option<f64>,
    /// Constant upper bound. Example: `0.5` for `log_loss`.
    pub upper: Option<f64>,
    /// Calibrate from the reference instead: the metric on `chunks` equal parts of the reference,
    /// mean ± `std_multiplier` · std (population std, as NannyML), clipped to the metric's range.
    /// Constant bounds given as well take precedence on their side.
    pub calibrate: bool,
    /// The `k` of mean ± k·std. Default `3`.
    pub std_multiplier: f64,
    /// Reference chunks to calibrate on. Default `10`.
    pub chunks: usize,
}

impl Default for MetricThreshold {
    fn default() -> Self {
        Self { lower: None, upper: None, calibrate: false, std_multiplier: 3.0, chunks: 10 }
    }
}

/// Metric names a threshold may name.
pub const METRICS: [&str; 12] = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "mae",
    "rmse",
    "mape",
    "r2",
    "label_coverage",
    "label_delay_seconds",
];

/// A column's test and threshold override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnOverride {
    /// Evidently's name of the test: `ks`, `chisquare`, `z`, `psi`, `jensenshannon`, `wasserstein`,
    /// `kl_div`, `hellinger`, `t_test`, `mannw`, `anderson`, `cramer_von_mises`, `ed`, `g_test`,
    /// `fisher_exact`, `TVD`, `empirical_mmd`.
    pub stattest: Option<String>,
    /// The threshold; its meaning follows the test (a p-value or a distance).
    pub threshold: Option<f64>,
    /// For an `embedding` feature: the method and its options, e.g.
    /// `embedding = { method = "distance", dist = "cosine" }` (default: Evidently's domain
    /// classifier, docs/drift.md).
    pub embedding: Option<Spec>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            reference: None,
            reference_prediction_column: "prediction".into(),
            reference_target_column: "target".into(),
            reference_rows: 1000,
            reference_span: None,
            window: None,
            window_rows: None,
            rolling_rows: None,
            interval: Duration::from_secs(30),
            label_lookback: Duration::from_secs(7 * 86400),
            drift_share: 0.5,
            max_exported_features: 100,
            positive_class: None,
            profiles: false,
            multivariate: true,
            domain_classifier: false,
            columns: BTreeMap::new(),
            thresholds: BTreeMap::new(),
        }
    }
}

/// How a model's traffic is cut into tumbling windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// By event time, this many µs long, aligned to the epoch.
    Time(i64),
    /// By row count, in (timestamp, prediction_id) order.
    Rows(usize),
}

impl AnalysisConfig {
    /// The tumbling windows: `window_rows` when given, else `window` (default one hour).
    pub fn windows(&self) -> Windows {
        match (self.window_rows, self.window) {
            (Some(n), _) => Windows::Rows(n),
            (None, w) => Windows::Time(w.unwrap_or(Duration::from_secs(3600)).as_micros() as i64),
        }
    }

    /// Checks ranges and test names; messages start with the field (`at` is its path prefix).
    pub fn validate(&self, at: &str, columns: &[&str]) -> Result<(), String> {
        if self.window.is_some_and(|w| w < Duration::from_secs(1)) {
            return Err(format!("{at}.window: must be at least 1s"));
        }
        if self.window.is_some() && self.window_rows.is_some() {
            return Err(format!(
                "{at}.window_rows: windows are either by event time (`window`) or by row count (`window_rows`); give one"
            ));
        }
        if self.window_rows == Some(0) {
            return Err(format!("{at}.window_rows: must be at least 1"));
        }
        if self.interval.is_zero() {
            return Err(format!("{at}.interval: must be more than 0"));
        }
        if self.rolling_rows == Some(0) {
            return Err(format!("{at}.rolling_rows: must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.drift_share) {
            return Err(format!("{at}.drift_share: must be between 0 and 1, got {}", self.drift_share));
        }
        if self.reference.is_none() && self.reference_rows == 0 {
            return Err(format!("{at}.reference_rows: must be at least 1 when no reference file is given"));
        }
        for (metric, t) in &self.thresholds {
            if !METRICS.contains(&metric.as_str()) {
                return Err(format!("{at}.thresholds.{metric}: unknown metric; one of {}", METRICS.join(", ")));
            }
            if t.calibrate && (t.chunks < 2 || !(t.std_multiplier > 0.0)) {
                return Err(format!("{at}.thresholds.{metric}: calibration needs chunks ≥ 2 and std_multiplier > 0"));
            }
            if !t.calibrate && t.lower.is_none() && t.upper.is_none() {
                return Err(format!("{at}.thresholds.{metric}: give `lower`, `upper` or `calibrate = true`"));
            }
        }
        for (name, o) in &self.columns {
            if !columns.contains(&name.as_str()) {
                return Err(format!("{at}.columns.{name}: no such feature (known: {})", columns.join(", ")));
            }
            if let Some(t) = &o.stattest {
                if StatTest::from_name(t).is_none() {
                    let names: Vec<&str> = StatTest::ALL.iter().map(|t| t.name()).collect();
                    return Err(format!(
                        "{at}.columns.{name}.stattest: unknown test `{t}`; one of {}",
                        names.join(", ")
                    ));
                }
            }
            if let Some(spec) = &o.embedding {
                spec.validate(&format!("{at}.columns.{name}.embedding"))?;
            }
        }
        Ok(())
    }
}

/// Serde for an optional `"10s"`-style duration.
mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => anchorwatch_collector::config::units::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        anchorwatch_collector::config::units::parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: serde_json::Value) -> AnalysisConfig {
        serde_json::from_value(value).expect("a valid config")
    }

    #[test]
    fn windows_are_by_time_or_by_rows_not_both() {
        assert_eq!(AnalysisConfig::default().windows(), Windows::Time(3_600_000_000));
        let rows = parse(serde_json::json!({"window_rows": 10000}));
        assert_eq!(rows.windows(), Windows::Rows(10000));
        assert_eq!(rows.validate("models[0].analysis", &[]), Ok(()));
        assert_eq!(parse(serde_json::json!({"window": "15m"})).windows(), Windows::Time(900_000_000));
        let both = parse(serde_json::json!({"window": "1h", "window_rows": 10000}));
        let error = both.validate("models[0].analysis", &[]).unwrap_err();
        assert!(error.starts_with("models[0].analysis.window_rows: windows are either by event time"), "{error}");
        let zero = parse(serde_json::json!({"window_rows": 0}));
        assert_eq!(zero.validate("m", &[]), Err("m.window_rows: must be at least 1".into()));
    }
}

//! The analyzer's Prometheus series, all in one place. They show each model's latest analysed
//! window. Label values come from bounded sets: configured models, their first
//! `max_exported_features` features, test names, metric names and check names.

use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// Analyzer metrics.
#[derive(Clone)]
pub struct Metrics {
    /// `anchorwatch_feature_drift_score{model,feature,stattest}`: the test's score.
    pub drift_score: GaugeVec,
    /// `anchorwatch_feature_drifted{model,feature,stattest}`: 1 when the column drifted.
    pub drifted: GaugeVec,
    /// `anchorwatch_multivariate_drift{model,method}`: a multivariate method's value (for
    /// `data_reconstruction`, the mean reconstruction error).
    pub multivariate: GaugeVec,
    /// `anchorwatch_multivariate_drifted{model,method}`: 1 when it is outside the reference's band.
    pub multivariate_drifted: GaugeVec,
    /// `anchorwatch_dataset_drift_share{model}`: share of drifted features.
    pub drift_share: GaugeVec,
    /// `anchorwatch_model_performance{model,metric,kind}`: kind is `realized` or `estimated`.
    pub performance: GaugeVec,
    /// `anchorwatch_performance_decay_ratio{model,metric}`: window value over reference value.
    pub decay: GaugeVec,
    /// `anchorwatch_performance_threshold_breached{model,metric,kind}`: 1 when outside its threshold.
    pub breached: GaugeVec,
    /// `anchorwatch_label_coverage_ratio{model}`: labeled rows over rows.
    pub coverage: GaugeVec,
    /// `anchorwatch_data_quality{model,feature,check}`.
    pub quality: GaugeVec,
    /// `anchorwatch_window_rows{model}`: rows in the latest window.
    pub rows: GaugeVec,
    /// `anchorwatch_analysis_duration_seconds`: one analysis run of one model.
    pub duration: Histogram,
    /// `anchorwatch_last_analysis_timestamp_seconds{model}`: end of the last completed run.
    pub last_run: GaugeVec,
    /// `anchorwatch_analysis_failures_total{model}`: analysis runs that failed.
    pub failures: IntCounterVec,
    /// `anchorwatch_analysis_skipped_rows_total{model,reason}`: stored rows the analysis cannot
    /// place and leaves out; `reason` is `event_time_out_of_range`.
    pub skipped_rows: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let g = |name: &str, help: &str, labels: &[&str]| GaugeVec::new(Opts::new(name, help), labels);
        let m = Self {
            drift_score: g(
                "anchorwatch_feature_drift_score",
                "Drift test score of a column in the latest window (p-value or distance, per stattest).",
                &["model", "feature", "stattest"],
            )?,
            drifted: g(
                "anchorwatch_feature_drifted",
                "1 when the column drifted in the latest window.",
                &["model", "feature", "stattest"],
            )?,
            multivariate: g(
                "anchorwatch_multivariate_drift",
                "Multivariate drift value of the tabular features together in the latest window (data_reconstruction: mean reconstruction error).",
                &["model", "method"],
            )?,
            multivariate_drifted: g(
                "anchorwatch_multivariate_drifted",
                "1 when the multivariate drift value is outside the reference's band in the latest window.",
                &["model", "method"],
            )?,
            drift_share: g(
                "anchorwatch_dataset_drift_share",
                "Share of drifted features in the latest window.",
                &["model"],
            )?,
            performance: g(
                "anchorwatch_model_performance",
                "Model performance in the latest window; kind is realized (labels) or estimated (scores).",
                &["model", "metric", "kind"],
            )?,
            decay: g(
                "anchorwatch_performance_decay_ratio",
                "Realized performance in the latest window over the reference's.",
                &["model", "metric"],
            )?,
            breached: g(
                "anchorwatch_performance_threshold_breached",
                "1 when a performance metric of the latest window is outside its configured threshold.",
                &["model", "metric", "kind"],
            )?,
            coverage: g(
                "anchorwatch_label_coverage_ratio",
                "Share of the latest window's predictions with a label.",
                &["model"],
            )?,
            quality: g(
                "anchorwatch_data_quality",
                "Data-quality figure of a feature in the latest window.",
                &["model", "feature", "check"],
            )?,
            rows: g("anchorwatch_window_rows", "Predictions in the latest analysed window.", &["model"])?,
            duration: Histogram::with_opts(
                HistogramOpts::new("anchorwatch_analysis_duration_seconds", "Time of one analysis run of one model.")
                    .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            )?,
            last_run: g(
                "anchorwatch_last_analysis_timestamp_seconds",
                "Unix time at which the last analysis run of the model completed.",
                &["model"],
            )?,
            failures: IntCounterVec::new(
                Opts::new("anchorwatch_analysis_failures_total", "Analysis runs of the model that failed."),
                &["model"],
            )?,
            skipped_rows: IntCounterVec::new(
                Opts::new(
                    "anchorwatch_analysis_skipped_rows_total",
                    "Stored rows the analysis cannot place and leaves out, by reason (event_time_out_of_range).",
                ),
                &["model", "reason"],
            )?,
        };
        for c in [
            &m.drift_score,
            &m.drifted,
            &m.multivariate,
            &m.multivariate_drifted,
            &m.breached,
            &m.drift_share,
            &m.performance,
            &m.decay,
            &m.coverage,
            &m.quality,
            &m.rows,
            &m.last_run,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.failures.clone()))?;
        registry.register(Box::new(m.skipped_rows.clone()))?;
        Ok(m)
    }
}

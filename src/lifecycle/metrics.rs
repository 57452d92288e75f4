//! The predictor's and registry's metrics, in one place.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Predictor metrics. Labels come from bounded sets: configured models, endpoints, reasons.
#[derive(Clone)]
pub struct Metrics {
    /// `anchorwatch_predictor_requests_total{model,endpoint,code}`: answered requests, by error code (`ok`).
    pub requests: IntCounterVec,
    /// `anchorwatch_predictor_rows_total{model}`: rows predicted.
    pub rows: IntCounterVec,
    /// `anchorwatch_predictor_inference_seconds{model}`: time in ONNX Runtime per request.
    pub inference: HistogramVec,
    /// `anchorwatch_predictor_capture_dropped_total{model,reason}`: predicted rows not captured.
    pub capture_dropped: IntCounterVec,
    /// `anchorwatch_model_champion_version{model}`: the served version (0: none).
    pub champion: IntGaugeVec,
    /// `anchorwatch_predictor_capture_seconds`: time to write one batch of captured rows to the
    /// collector (WAL append and sync); answers do not wait for it.
    pub capture: Histogram,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "anchorwatch_predictor_requests_total",
                    "Prediction requests answered, by code (ok or the error code).",
                ),
                &["model", "endpoint", "code"],
            )?,
            rows: IntCounterVec::new(Opts::new("anchorwatch_predictor_rows_total", "Rows predicted."), &["model"])?,
            inference: HistogramVec::new(
                HistogramOpts::new("anchorwatch_predictor_inference_seconds", "Time in ONNX Runtime per request.")
                    .buckets(prometheus::exponential_buckets(0.00005, 2.0, 16)?),
                &["model"],
            )?,
            capture_dropped: IntCounterVec::new(
                Opts::new("anchorwatch_predictor_capture_dropped_total", "Predicted rows not captured, by reason."),
                &["model", "reason"],
            )?,
            champion: IntGaugeVec::new(
                Opts::new("anchorwatch_model_champion_version", "The version the predictor serves (0: none)."),
                &["model"],
            )?,
            capture: Histogram::with_opts(
                HistogramOpts::new(
                    "anchorwatch_predictor_capture_seconds",
                    "Time to write one batch of captured rows to the collector (WAL append and sync).",
                )
                .buckets(prometheus::exponential_buckets(0.00005, 2.0, 16)?),
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.rows.clone()))?;
        registry.register(Box::new(m.inference.clone()))?;
        registry.register(Box::new(m.capture_dropped.clone()))?;
        registry.register(Box::new(m.champion.clone()))?;
        registry.register(Box::new(m.capture.clone()))?;
        Ok(m)
    }
}

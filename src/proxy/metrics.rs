//! The proxy's Prometheus metrics, all in one place. Label values come from bounded sets: HTTP
//! status classes and [`DropReason`]s.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Why a captured exchange was not stored. The traffic itself is never affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The capture queue was full.
    QueueFull,
    /// The request or response body was over `--capture-max-bytes`.
    TooLarge,
    /// The bodies did not have a shape rows could be read from.
    ExtractFailed,
    /// The upstream answered with a status other than 2xx, or not at all.
    UpstreamError,
    /// The client or the upstream went away before the body ended.
    Aborted,
    /// A request body with trailers, which are forwarded but not captured.
    UnsupportedBody,
    /// The collector refused the rows (they do not fit the model's schema).
    Rejected,
    /// The local collector could not take the rows even after retrying.
    CollectorError,
    /// The remote collector was down and the spool was full (or could not be written).
    SpoolFull,
    /// The proxy was shutting down and the capture queue was closed.
    Shutdown,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 10] = [
        DropReason::QueueFull,
        DropReason::TooLarge,
        DropReason::ExtractFailed,
        DropReason::UpstreamError,
        DropReason::Aborted,
        DropReason::UnsupportedBody,
        DropReason::Rejected,
        DropReason::CollectorError,
        DropReason::SpoolFull,
        DropReason::Shutdown,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::TooLarge => "too_large",
            DropReason::ExtractFailed => "extract_failed",
            DropReason::UpstreamError => "upstream_error",
            DropReason::Aborted => "aborted",
            DropReason::UnsupportedBody => "unsupported_body",
            DropReason::Rejected => "rejected",
            DropReason::CollectorError => "collector_error",
            DropReason::SpoolFull => "spool_full",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Proxy metrics. Children of labelled series are resolved once, so the request path only
/// increments atomics.
pub struct ProxyMetrics {
    /// Everything the proxy (and, in local mode, its collector) exports.
    pub registry: Registry,
    requests: [IntCounter; 5],
    /// `anchorwatch_proxy_upstream_duration_seconds`: until the upstream's response headers (or
    /// the 502/504), the proxy's own share included.
    pub upstream_duration: Histogram,
    /// `anchorwatch_capture_rows_total`: rows the collector acknowledged.
    pub capture_rows: IntCounter,
    dropped: Vec<IntCounter>,
    /// `anchorwatch_capture_queue_depth`: captured exchanges waiting in the queue.
    pub queue_depth: IntGauge,
    /// `anchorwatch_proxy_spool_bytes`: rows on disk waiting for the remote collector.
    pub spool_bytes: IntGauge,
    /// `anchorwatch_proxy_collector_errors_total`: failed attempts to reach the remote collector.
    pub collector_errors: IntCounter,
}

impl ProxyMetrics {
    /// Creates the metrics in a new registry.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests_vec = IntCounterVec::new(
            Opts::new("anchorwatch_proxy_requests_total", "Requests answered by the proxy, by status class."),
            &["code_class"],
        )?;
        let dropped_vec = IntCounterVec::new(
            Opts::new(
                "anchorwatch_capture_dropped_total",
                "Captured exchanges not stored (the traffic itself went through), by reason.",
            ),
            &["reason"],
        )?;
        let upstream_duration = Histogram::with_opts(
            HistogramOpts::new(
                "anchorwatch_proxy_upstream_duration_seconds",
                "Time from a request's arrival to the upstream's response headers (or the proxy's 502/504).",
            )
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        let capture_rows = IntCounter::with_opts(Opts::new(
            "anchorwatch_capture_rows_total",
            "Captured rows the collector acknowledged.",
        ))?;
        let queue_depth = IntGauge::with_opts(Opts::new(
            "anchorwatch_capture_queue_depth",
            "Captured exchanges waiting in the queue.",
        ))?;
        let spool_bytes = IntGauge::with_opts(Opts::new(
            "anchorwatch_proxy_spool_bytes",
            "Bytes of captured rows spooled on disk for the remote collector.",
        ))?;
        let collector_errors = IntCounter::with_opts(Opts::new(
            "anchorwatch_proxy_collector_errors_total",
            "Failed attempts to deliver rows to the remote collector (retried).",
        ))?;
        let requests = ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|c| requests_vec.with_label_values(&[c]));
        let dropped = DropReason::ALL.iter().map(|r| dropped_vec.with_label_values(&[r.as_str()])).collect();
        registry.register(Box::new(requests_vec))?;
        registry.register(Box::new(dropped_vec))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(capture_rows.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(spool_bytes.clone()))?;
        registry.register(Box::new(collector_errors.clone()))?;
        Ok(Self {
            registry,
            requests,
            upstream_duration,
            capture_rows,
            dropped,
            queue_depth,
            spool_bytes,
            collector_errors,
        })
    }

    /// Counts one answered request.
    pub fn request(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.requests[class].inc();
    }

    /// Counts `n` captured exchanges that will not be stored, and says why at debug level.
    pub fn dropped(&self, reason: DropReason, n: u64, detail: &dyn std::fmt::Display) {
        let index = DropReason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.dropped[index].inc_by(n);
        tracing::debug!(reason = reason.as_str(), exchanges = n, detail = %detail, "capture dropped");
    }
}

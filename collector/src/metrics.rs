//! The collector's Prometheus metrics, all in one place. Label values come from bounded sets:
//! configured model names (`_unknown` otherwise), table names, and error codes.

use prometheus::{GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Model label for requests naming a model that is not configured.
pub const UNKNOWN_MODEL: &str = "_unknown";

/// Collector metrics.
#[derive(Clone)]
pub struct Metrics {
    /// `anchorwatch_ingest_rows_total{model,table}`: rows acknowledged.
    pub rows: IntCounterVec,
    /// `anchorwatch_ingest_bytes_total{model,table}`: request body bytes acknowledged. Rows captured
    /// in the same process (the predictor, the proxy's local mode) arrive parsed and count none.
    pub bytes: IntCounterVec,
    /// `anchorwatch_ingest_rejected_total{model,reason}`: requests refused, by error code.
    pub rejected: IntCounterVec,
    /// `anchorwatch_wal_bytes{model}`: WAL bytes acknowledged but not yet in Parquet.
    pub wal_bytes: IntGaugeVec,
    /// `anchorwatch_buffer_fill_ratio{model}`: `wal_bytes` over `max_pending_bytes`; 1 means 429s.
    pub buffer_fill: GaugeVec,
    /// `anchorwatch_flush_duration_seconds{model}`: time to turn one WAL segment into Parquet.
    pub flush_duration: HistogramVec,
    /// `anchorwatch_parquet_files_written_total{model,table}`.
    pub files_written: IntCounterVec,
    /// `anchorwatch_flush_errors_total{model}`: failed flush attempts (retried).
    pub flush_errors: IntCounterVec,
    /// `anchorwatch_wal_append_duration_seconds`: from enqueue to durable acknowledgement.
    pub wal_append: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            rows: IntCounterVec::new(
                Opts::new("anchorwatch_ingest_rows_total", "Rows acknowledged by ingest."),
                &["model", "table"],
            )?,
            bytes: IntCounterVec::new(
                Opts::new(
                    "anchorwatch_ingest_bytes_total",
                    "Request body bytes acknowledged by ingest (HTTP bodies; in-process capture counts none).",
                ),
                &["model", "table"],
            )?,
            rejected: IntCounterVec::new(
                Opts::new("anchorwatch_ingest_rejected_total", "Ingest requests refused, by reason."),
                &["model", "reason"],
            )?,
            wal_bytes: IntGaugeVec::new(
                Opts::new("anchorwatch_wal_bytes", "WAL bytes acknowledged but not yet written to Parquet."),
                &["model"],
            )?,
            buffer_fill: GaugeVec::new(
                Opts::new(
                    "anchorwatch_buffer_fill_ratio",
                    "Unflushed WAL bytes over collector.max_pending_bytes; at 1 ingest answers 429.",
                ),
                &["model"],
            )?,
            flush_duration: HistogramVec::new(
                HistogramOpts::new("anchorwatch_flush_duration_seconds", "Time to write one WAL segment to Parquet.")
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["model"],
            )?,
            files_written: IntCounterVec::new(
                Opts::new("anchorwatch_parquet_files_written_total", "Parquet files written."),
                &["model", "table"],
            )?,
            flush_errors: IntCounterVec::new(
                Opts::new("anchorwatch_flush_errors_total", "Failed attempts to flush a WAL segment (retried)."),
                &["model"],
            )?,
            wal_append: Histogram::with_opts(
                HistogramOpts::new(
                    "anchorwatch_wal_append_duration_seconds",
                    "Time from enqueueing a request's rows to their durable acknowledgement.",
                )
                .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5]),
            )?,
        };
        registry.register(Box::new(m.rows.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.wal_bytes.clone()))?;
        registry.register(Box::new(m.buffer_fill.clone()))?;
        registry.register(Box::new(m.flush_duration.clone()))?;
        registry.register(Box::new(m.files_written.clone()))?;
        registry.register(Box::new(m.flush_errors.clone()))?;
        registry.register(Box::new(m.wal_append.clone()))?;
        Ok(m)
    }
}

/// Metrics of compaction and retention (`crate::compact`), per model and table.
#[derive(Clone)]
pub struct StoreMetrics {
    /// `anchorwatch_compaction_files_total{model,table}`: small files merged into compacted files.
    pub compacted_files: IntCounterVec,
    /// `anchorwatch_compaction_read_bytes_total{model,table}`: bytes of the files merged.
    pub compacted_read_bytes: IntCounterVec,
    /// `anchorwatch_compaction_written_bytes_total{model,table}`: bytes of the compacted files.
    pub compacted_written_bytes: IntCounterVec,
    /// `anchorwatch_compaction_deleted_files_total{model,table}`: merged files deleted after the grace.
    pub compacted_deleted: IntCounterVec,
    /// `anchorwatch_retention_deleted_files_total{model,table}`: objects deleted by retention.
    pub retention_deleted: IntCounterVec,
    /// `anchorwatch_store_maintenance_errors_total{model}`: failed passes (retried at the next interval).
    pub errors: IntCounterVec,
    /// `anchorwatch_store_maintenance_last_success_timestamp_seconds{model}`: end of the last good pass.
    pub last_success: GaugeVec,
}

impl StoreMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| IntCounterVec::new(Opts::new(name, help), labels);
        let table = &["model", "table"];
        let m = Self {
            compacted_files: counter(
                "anchorwatch_compaction_files_total",
                "Small Parquet files merged by compaction.",
                table,
            )?,
            compacted_read_bytes: counter(
                "anchorwatch_compaction_read_bytes_total",
                "Bytes of the Parquet files merged by compaction.",
                table,
            )?,
            compacted_written_bytes: counter(
                "anchorwatch_compaction_written_bytes_total",
                "Bytes of the Parquet files compaction wrote.",
                table,
            )?,
            compacted_deleted: counter(
                "anchorwatch_compaction_deleted_files_total",
                "Merged files deleted once their grace had passed.",
                table,
            )?,
            retention_deleted: counter(
                "anchorwatch_retention_deleted_files_total",
                "Objects deleted because their partition or window was older than the retention.",
                table,
            )?,
            errors: counter(
                "anchorwatch_store_maintenance_errors_total",
                "Compaction and retention passes that failed (retried at the next interval).",
                &["model"],
            )?,
            last_success: GaugeVec::new(
                Opts::new(
                    "anchorwatch_store_maintenance_last_success_timestamp_seconds",
                    "Unix time at which the last successful compaction and retention pass ended.",
                ),
                &["model"],
            )?,
        };
        registry.register(Box::new(m.compacted_files.clone()))?;
        registry.register(Box::new(m.compacted_read_bytes.clone()))?;
        registry.register(Box::new(m.compacted_written_bytes.clone()))?;
        registry.register(Box::new(m.compacted_deleted.clone()))?;
        registry.register(Box::new(m.retention_deleted.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        registry.register(Box::new(m.last_success.clone()))?;
        Ok(m)
    }

    /// Counts what a pass did.
    pub fn record(&self, report: &crate::compact::PassReport) {
        for t in &report.tables {
            let labels = [report.model.as_str(), t.table.as_str()];
            self.compacted_files.with_label_values(&labels).inc_by(t.files_merged as u64);
            self.compacted_read_bytes.with_label_values(&labels).inc_by(t.bytes_before);
            self.compacted_written_bytes.with_label_values(&labels).inc_by(t.bytes_after);
            self.compacted_deleted.with_label_values(&labels).inc_by(t.sources_deleted as u64);
            self.retention_deleted.with_label_values(&labels).inc_by(t.files_deleted as u64);
        }
        self.last_success.with_label_values(&[&report.model]).set(chrono::Utc::now().timestamp() as f64);
    }
}

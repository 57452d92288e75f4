//! Continuous analysis: every window of collected traffic compared with the model's reference.
//!
//! Per model, on a schedule ([`config::AnalysisConfig::interval`]): list the store's Parquet
//! files, find the tumbling event-time windows whose files changed since the last run (late rows
//! land in the window they belong to), recompute those windows — drift per feature, prediction
//! drift, target drift, multivariate drift, data quality, realized and estimated performance — persist them as the
//! `drift`, `performance` and `quality` tables under `<root>/<model>/results/`, and export the
//! latest window as Prometheus gauges. The state of what was analysed is stored beside the
//! results, so a restart resumes without recomputing old windows.

pub mod config;
pub mod data;
mod labels;
pub mod metrics;
pub mod multivariate;
pub mod performance;
pub mod profile;
pub mod reference;
pub mod results;
pub mod service;
pub mod window;

pub use config::AnalysisConfig;
pub use service::{ModelMonitor, Monitor, Published};

/// Why an analysis step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the store failed.
    #[error("store: {0}")]
    Store(#[from] object_store::Error),
    /// Writing to the store through the collector's store failed.
    #[error("{0}")]
    Collector(#[from] anchorwatch_collector::Error),
    /// A query over the store failed.
    #[error("query: {0}")]
    Query(#[from] crate::sql::QueryError),
    /// DataFusion failed.
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow or Parquet data could not be converted.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Writing Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The reference is missing, unreadable or does not match the schema.
    #[error("reference: {0}")]
    Reference(String),
    /// The stored state or a result could not be (de)serialized.
    #[error("state: {0}")]
    State(#[from] serde_json::Error),
}

/// Result alias of the monitor.
pub type Result<T, E = Error> = std::result::Result<T, E>;

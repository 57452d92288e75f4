//! The collector: capture and storage of what a model saw and said.
//!
//! Takes in: prediction and label records over HTTP (JSON object, JSON array, NDJSON, or an Arrow
//! IPC stream), validated against each model's [`schema::ModelSchema`].
//! Gives out: durable acknowledgements (the rows are in the write-ahead log), and zstd Parquet files
//! in the hive layout of `DESIGN.md`, written through `object_store`.
//! Must never: acknowledge a row that is not in the WAL, write part of a rejected request, or let
//! memory grow with load (queues and bodies are bounded; overload answers 429).

pub mod api;
pub mod compact;
pub mod config;
pub mod decode;
pub mod error;
pub mod layout;
pub mod metrics;
pub mod model;
pub mod schema;
pub mod store;
pub mod wal;

pub use config::CollectorConfig;
pub use error::{ApiError, Error, Result};
pub use model::{Collector, ModelCollector};
pub use schema::ModelSchema;

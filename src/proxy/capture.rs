//! The capture queue and its worker: exchanges captured on the request path wait in a bounded
//! queue; one worker turns them into records and hands them to the collector, local or remote.
//! Nothing here runs on the request path except [`CaptureQueue::submit`], which never waits.

use std::sync::Arc;

use anchorwatch_collector::ModelCollector;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::config::ExtractConfig;
use super::extract;
use super::metrics::{DropReason, ProxyMetrics};
use super::remote::Remote;
use crate::batching::{self, Batch, Full};

/// One request and its response on a predict route, both bodies whole.
pub struct Capture {
    /// The correlation id.
    pub id: String,
    /// When the request arrived, µs since the epoch (the rows' event time).
    pub received_us: i64,
    /// The request body.
    pub request: Bytes,
    /// The response body.
    pub response: Bytes,
}

/// The sending side of the capture queue.
pub struct CaptureQueue {
    tx: mpsc::Sender<Capture>,
    metrics: Arc<ProxyMetrics>,
}

impl CaptureQueue {
    /// A queue of `capacity` exchanges, and its receiving end for [`run_worker`].
    pub fn new(capacity: usize, metrics: Arc<ProxyMetrics>) -> (Self, mpsc::Receiver<Capture>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, metrics }, rx)
    }

    /// Queues an exchange, or drops and counts it when the queue is full: the caller is on the
    /// request path and must not wait.
    pub fn submit(&self, capture: Capture) {
        match self.tx.try_send(capture) {
            Ok(()) => self.metrics.queue_depth.inc(),
            Err(mpsc::error::TrySendError::Full(c)) => self.metrics.dropped(DropReason::QueueFull, 1, &c.id),
            Err(mpsc::error::TrySendError::Closed(c)) => self.metrics.dropped(DropReason::Shutdown, 1, &c.id),
        }
    }

    /// Counts an exchange that will not be captured.
    pub fn drop_one(&self, reason: DropReason, detail: &dyn std::fmt::Display) {
        self.metrics.dropped(reason, 1, detail);
    }
}

/// The records of one exchange, in the ingest format of `docs/ingest.md`.
pub type Group = Vec<Value>;

/// Where records go.
pub enum Sink {
    /// The collector in this process.
    Local(Arc<ModelCollector>),
    /// A remote anchorwatch, with a spool on disk.
    Remote(Arc<Remote>),
}

/// Extracts and stores until the queue is closed and empty: one write per batch of what arrives
/// within [`batching::LINGER`], up to `batch_max_rows` rows.
pub async fn run_worker(
    mut rx: mpsc::Receiver<Capture>,
    extract_config: ExtractConfig,
    sink: Sink,
    metrics: Arc<ProxyMetrics>,
    batch_max_rows: usize,
) {
    loop {
        let mut groups = Vec::new();
        let mut rows = 0;
        let open = batching::gather(&mut rx, batching::LINGER, |capture| {
            metrics.queue_depth.dec();
            match records(&extract_config, &capture) {
                Ok(group) => {
                    rows += group.len();
                    groups.push(group);
                }
                Err(e) => metrics.dropped(DropReason::ExtractFailed, 1, &format_args!("{}: {e}", capture.id)),
            }
            Full::from(rows >= batch_max_rows)
        })
        .await;
        if !groups.is_empty() {
            match &sink {
                Sink::Local(model) => write_local(model, groups, &metrics).await,
                Sink::Remote(remote) => remote.send(groups).await,
            }
        }
        if !open {
            return;
        }
    }
}

/// The records of one exchange: ids `<id>` for a single row, `<id>-<index>` for batches.
pub fn records(config: &ExtractConfig, capture: &Capture) -> Result<Group, extract::ExtractError> {
    let out = extract::extract(config, &capture.request, &capture.response)?;
    let timestamp = chrono::DateTime::from_timestamp_micros(capture.received_us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let single = out.rows.len() == 1;
    Ok(out
        .rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let id = if single { capture.id.clone() } else { format!("{}-{i}", capture.id) };
            let mut record = json!({
                "prediction_id": id,
                "timestamp": timestamp,
                "features": row.features,
                "prediction": row.prediction,
            });
            if let Some(v) = &out.model_version {
                record["model_version"] = Value::from(v.as_str());
            }
            if let Some(s) = row.scores {
                record["scores"] = s;
            }
            record
        })
        .collect())
}

/// The body of one ingest request holding every group's records.
pub fn body(groups: &[Group]) -> Vec<u8> {
    let all: Vec<&Value> = groups.iter().flatten().collect();
    serde_json::to_vec(&all).unwrap_or_default()
}

async fn write_local(model: &ModelCollector, groups: Vec<Group>, metrics: &ProxyMetrics) {
    let mut batch = Batch::default();
    groups.into_iter().for_each(|g| batch.push(g));
    let give_up = tokio::time::Instant::now() + batching::RETRY_FOR;
    batch
        .write_local(model, give_up, |exchanges, rows, result| match result {
            Ok(()) => metrics.capture_rows.inc_by(rows as u64),
            Err(e) => local_drop(&e, exchanges as u64, metrics),
        })
        .await;
}

fn local_drop(e: &anchorwatch_collector::ApiError, n: u64, metrics: &ProxyMetrics) {
    let reason = if e.status.is_client_error() { DropReason::Rejected } else { DropReason::CollectorError };
    if reason == DropReason::Rejected {
        tracing::warn!(code = e.code, message = %e.message, "captured rows do not fit the model's schema");
    }
    metrics.dropped(reason, n, &e.message);
}

//! The capture queue and its worker: exchanges captured on the request path wait in a bounded
//! queue; one worker turns them into records and hands them to the collector, local or remote.
//! Nothing here runs on the request path except [`CaptureQueue::submit`], which never waits.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use driftwatch_collector::ModelCollector;
use driftwatch_collector::decode::{Format, Table};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::config::ExtractConfig;
use super::extract;
use super::metrics::{DropReason, ProxyMetrics};
use super::remote::Remote;

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
    /// A remote driftwatch, with a spool on disk.
    Remote(Arc<Remote>),
}

/// How long a batch waits for more exchanges after its first one, at most. Each write is a WAL
/// append and an fsync (or a POST): batches of this span cost at most about 50 writes a second
/// (until batches fill `batch_max_rows` sooner) instead of one per few requests. Rows reach Parquet at the
/// collector's `flush_interval` anyway, so the wait is not seen.
pub const BATCH_LINGER: Duration = Duration::from_millis(20);

/// Extracts and stores until the queue is closed and empty.
pub async fn run_worker(
    mut rx: mpsc::Receiver<Capture>,
    extract_config: ExtractConfig,
    sink: Sink,
    metrics: Arc<ProxyMetrics>,
    batch_max_rows: usize,
) {
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + BATCH_LINGER;
        let mut groups = Vec::new();
        let mut rows = 0;
        let mut next = Some(first);
        // One write per batch: what arrives within the linger, up to `batch_max_rows` rows.
        while let Some(capture) = next.take() {
            metrics.queue_depth.dec();
            match records(&extract_config, &capture) {
                Ok(group) => {
                    rows += group.len();
                    groups.push(group);
                }
                Err(e) => metrics.dropped(DropReason::ExtractFailed, 1, &format_args!("{}: {e}", capture.id)),
            }
            if rows < batch_max_rows {
                next = match rx.try_recv() {
                    Ok(capture) => Some(capture),
                    // Closed (shutdown) or the linger is over: write what there is.
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        tokio::time::timeout_at(deadline, rx.recv()).await.ok().flatten()
                    }
                };
            }
        }
        if groups.is_empty() {
            continue;
        }
        match &sink {
            Sink::Local(model) => write_local(model, groups, &metrics).await,
            Sink::Remote(remote) => remote.send(groups).await,
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
    match ingest_retrying(model, &groups, metrics).await {
        Ok(rows) => metrics.capture_rows.inc_by(rows as u64),
        // One exchange that does not fit the schema must not sink the others of its batch.
        Err(e) if e.status.is_client_error() && groups.len() > 1 => {
            for group in groups {
                match ingest_retrying(model, std::slice::from_ref(&group), metrics).await {
                    Ok(rows) => metrics.capture_rows.inc_by(rows as u64),
                    Err(e) => local_drop(&e, 1, metrics),
                }
            }
        }
        Err(e) => local_drop(&e, groups.len() as u64, metrics),
    }
}

fn local_drop(e: &driftwatch_collector::ApiError, n: u64, metrics: &ProxyMetrics) {
    let reason = if e.status.is_client_error() { DropReason::Rejected } else { DropReason::CollectorError };
    if reason == DropReason::Rejected {
        tracing::warn!(code = e.code, message = %e.message, "captured rows do not fit the model's schema");
    }
    metrics.dropped(reason, n, &e.message);
}

/// Ingests, retrying for a few seconds while the collector is overloaded or unavailable; the
/// capture queue meanwhile fills and sheds load.
async fn ingest_retrying(
    model: &ModelCollector,
    groups: &[Group],
    _metrics: &ProxyMetrics,
) -> Result<usize, driftwatch_collector::ApiError> {
    let body = body(groups);
    let mut backoff = Duration::from_millis(50);
    loop {
        match model.ingest(Table::Predictions, Format::Json, &body).await {
            Ok(receipt) => return Ok(receipt.rows()),
            Err(e)
                if matches!(e.status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
                    && backoff < Duration::from_secs(5) =>
            {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
                return Err(driftwatch_collector::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code, e.message));
            }
            Err(e) => return Err(e),
        }
    }
}

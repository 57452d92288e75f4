//! The predictor's capture: each model's answered rows wait in a queue bounded in rows, and one
//! worker per model writes what arrives within [`batching::LINGER`] to the collector in one WAL
//! append. An answer never waits for the write (the predictor's traffic comes first); rows that
//! cannot be stored are dropped and counted, never lost silently. `/v1/flush` and a graceful stop
//! write the queues first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use driftwatch_collector::{Collector, ModelCollector};
use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use crate::batching::{self, Batch, Full};

/// What a model's capture queue carries.
enum Item {
    /// One request's prediction rows; they hold as many of the lane's row permits.
    Rows(RecordBatch),
    /// Answered once everything queued before it is written (or dropped and counted).
    Drain(oneshot::Sender<()>),
    /// Write what is queued until the deadline, count the rest as `shutdown`, and end.
    Stop(tokio::time::Instant),
}

/// Markers (drain, stop) the queue has room for beyond its rows.
const MARKERS: usize = 64;

/// One model's queue and worker.
struct Lane {
    tx: mpsc::Sender<Item>,
    /// Rows the queue may still take: taken on submit, given back once written or dropped.
    room: Arc<Semaphore>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// Every model's capture queue.
pub struct Capture {
    lanes: BTreeMap<String, Lane>,
    metrics: Option<Metrics>,
}

impl Capture {
    /// Starts, for each model of `collector`, a queue of at most `queue_rows` rows and its
    /// worker. A batch is written when it holds `batch_rows` rows, or when the linger is over.
    pub fn start(collector: &Collector, queue_rows: usize, batch_rows: usize, metrics: Option<Metrics>) -> Self {
        let lanes = collector
            .model_names()
            .filter_map(|name| collector.model(name))
            .map(|model| {
                // Every request holds at least one row: the channel never fills before the rows do.
                let (tx, rx) = mpsc::channel(queue_rows + MARKERS);
                let room = Arc::new(Semaphore::new(queue_rows));
                let worker = Worker { model: model.clone(), room: room.clone(), metrics: metrics.clone(), batch_rows };
                let worker = tokio::spawn(worker.run(rx));
                (model.name.clone(), Lane { tx, room, worker: Mutex::new(Some(worker)) })
            })
            .collect();
        Self { lanes, metrics }
    }

    /// Queues one request's rows without waiting; when the queue has no room for them or is
    /// stopped, or they could not be built, drops and counts them.
    pub fn submit(&self, model: &str, rows: usize, built: Result<RecordBatch, String>) {
        let Some(lane) = self.lanes.get(model) else { return };
        let records = match built {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(model, error = %e, "predictions not captured: they do not fit the model's schema");
                return count_dropped(&self.metrics, model, "rejected", rows);
            }
        };
        let reason = match lane.room.try_acquire_many(rows as u32) {
            Err(_) => "queue_full",
            Ok(permit) => {
                permit.forget();
                match lane.tx.try_send(Item::Rows(records)) {
                    Ok(()) => return,
                    Err(e) => {
                        lane.room.add_permits(rows);
                        match e {
                            mpsc::error::TrySendError::Full(_) => "queue_full",
                            mpsc::error::TrySendError::Closed(_) => "shutdown",
                        }
                    }
                }
            }
        };
        count_dropped(&self.metrics, model, reason, rows);
    }

    /// Returns once every row queued before the call is written, or dropped and counted.
    pub async fn drain(&self) {
        let lanes = self.lanes.values().map(|lane| async move {
            let (done, written) = oneshot::channel();
            if lane.tx.send(Item::Drain(done)).await.is_ok() {
                let _ = written.await;
            }
        });
        futures::future::join_all(lanes).await;
    }

    /// Writes what is queued until `deadline`, counts the rest as `shutdown`, and ends the
    /// workers, which then hold no collector. Rows submitted afterwards are counted as
    /// `shutdown` too.
    pub async fn stop(&self, deadline: tokio::time::Instant) {
        for lane in self.lanes.values() {
            let _ = lane.tx.send(Item::Stop(deadline)).await;
        }
        for lane in self.lanes.values() {
            let worker = lane.worker.lock().expect("capture worker lock").take();
            if let Some(worker) = worker {
                let _ = worker.await;
            }
        }
    }
}

fn count_dropped(metrics: &Option<Metrics>, model: &str, reason: &str, rows: usize) {
    tracing::debug!(model, rows, reason, "predictions not captured");
    if let Some(m) = metrics {
        m.capture_dropped.with_label_values(&[model, reason]).inc_by(rows as u64);
    }
}

/// How long a batch is retried while the collector is overloaded.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// One model's capture worker.
struct Worker {
    model: Arc<ModelCollector>,
    room: Arc<Semaphore>,
    metrics: Option<Metrics>,
    batch_rows: usize,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Item>) {
        let mut stop_at: Option<tokio::time::Instant> = None;
        loop {
            let mut batch = Batch::default();
            let mut drained = Vec::new();
            let open = batching::gather(&mut rx, batching::LINGER, |item| match item {
                Item::Rows(records) => {
                    batch.push(vec![records]);
                    Full::from(batch.rows() >= self.batch_rows)
                }
                Item::Drain(done) => {
                    drained.push(done);
                    Full::Yes
                }
                Item::Stop(deadline) => {
                    stop_at = Some(deadline);
                    Full::Yes
                }
            })
            .await;
            if stop_at.is_some() {
                // What is queued is still taken; new submits are refused and counted.
                rx.close();
            }
            self.write(&batch, stop_at).await;
            self.room.add_permits(batch.rows());
            drained.into_iter().for_each(|done| {
                let _ = done.send(());
            });
            if !open {
                return;
            }
        }
    }

    /// Writes a batch, retrying while the collector is overloaded, but not past a stop's
    /// deadline; whatever is not stored is counted.
    async fn write(&self, batch: &Batch<RecordBatch>, stop_at: Option<tokio::time::Instant>) {
        if batch.rows() == 0 {
            return;
        }
        let name = self.model.name.as_str();
        let give_up = match stop_at {
            Some(deadline) if tokio::time::Instant::now() >= deadline => {
                return count_dropped(&self.metrics, name, "shutdown", batch.rows());
            }
            Some(deadline) => deadline.min(tokio::time::Instant::now() + RETRY_FOR),
            None => tokio::time::Instant::now() + RETRY_FOR,
        };
        let started = Instant::now();
        let written = std::panic::AssertUnwindSafe(batch.write_local(&self.model, give_up, |_, rows, result| {
            let Err(e) = result else { return };
            let reason = match e.status.as_u16() {
                503 => "unavailable",
                s if (400..500).contains(&s) => "rejected",
                _ => "error",
            };
            tracing::warn!(model = name, rows, code = e.code, message = %e.message, "predictions not captured");
            count_dropped(&self.metrics, name, reason, rows);
        }))
        .catch_unwind()
        .await;
        // A bug in the write path must not end capture for this model: count the batch, go on.
        if written.is_err() {
            tracing::error!(model = name, rows = batch.rows(), "capture write panicked; rows dropped");
            count_dropped(&self.metrics, name, "error", batch.rows());
        }
        if let Some(m) = &self.metrics {
            m.capture.observe(started.elapsed().as_secs_f64());
        }
    }
}

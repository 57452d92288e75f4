//! The predictor's capture: each model's answered rows wait in a bounded queue, and one worker per
//! model writes what arrives within [`batching::LINGER`] to the collector in one WAL append. An
//! answer never waits for the write (the predictor's traffic comes first); when the queue is full
//! the rows are dropped and counted. `/v1/flush` and shutdown drain the queues first, so nothing
//! answered before them is lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use driftwatch_collector::{Collector, ModelCollector};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use crate::batching::{self, Batch, Full};

/// What a model's capture queue carries.
enum Item {
    /// One request's prediction records.
    Rows(Vec<Value>),
    /// Answered once everything queued before it is written; with `stop`, the worker then ends.
    Drain { done: oneshot::Sender<()>, stop: bool },
}

/// One model's queue and worker.
struct Lane {
    tx: mpsc::Sender<Item>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Lane {
    /// Waits until everything queued before is written; false when the worker has ended.
    async fn drain(&self, stop: bool) -> bool {
        let (done, written) = oneshot::channel();
        self.tx.send(Item::Drain { done, stop }).await.is_ok() && written.await.is_ok()
    }
}

/// Every model's capture queue.
pub struct Capture {
    lanes: BTreeMap<String, Lane>,
    metrics: Option<Metrics>,
}

impl Capture {
    /// Starts a queue of `queue` requests and its worker for each model of `collector`. A batch
    /// is written when it holds `batch_rows` rows, or when the linger is over.
    pub fn start(collector: &Collector, queue: usize, batch_rows: usize, metrics: Option<Metrics>) -> Self {
        let lanes = collector
            .model_names()
            .filter_map(|name| collector.model(name))
            .map(|model| {
                let (tx, rx) = mpsc::channel(queue);
                let worker = tokio::spawn(run(model.clone(), rx, batch_rows, metrics.clone()));
                (model.name.clone(), Lane { tx, worker: Mutex::new(Some(worker)) })
            })
            .collect();
        Self { lanes, metrics }
    }

    /// Queues one request's records without waiting; when the queue is full or stopped, drops
    /// and counts them.
    pub fn submit(&self, model: &str, records: Vec<Value>) {
        let Some(lane) = self.lanes.get(model) else { return };
        let rows = records.len();
        let reason = match lane.tx.try_send(Item::Rows(records)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => "queue_full",
            Err(mpsc::error::TrySendError::Closed(_)) => "shutdown",
        };
        tracing::debug!(model, rows, reason, "predictions not captured");
        if let Some(m) = &self.metrics {
            m.capture_dropped.with_label_values(&[model, reason]).inc_by(rows as u64);
        }
    }

    /// Returns once every row queued before the call is written (or dropped and counted).
    pub async fn drain(&self) {
        for lane in self.lanes.values() {
            lane.drain(false).await;
        }
    }

    /// Drains the queues and ends the workers, which then hold no collector. Rows submitted
    /// afterwards are dropped and counted as `shutdown`.
    pub async fn stop(&self) {
        for lane in self.lanes.values() {
            lane.drain(true).await;
            let worker = lane.worker.lock().expect("capture worker lock").take();
            if let Some(worker) = worker {
                let _ = worker.await;
            }
        }
    }
}

async fn run(model: Arc<ModelCollector>, mut rx: mpsc::Receiver<Item>, batch_rows: usize, metrics: Option<Metrics>) {
    loop {
        let mut batch = Batch::default();
        let mut drained = Vec::new();
        let mut stop = false;
        let open = batching::gather(&mut rx, batching::LINGER, |item| match item {
            Item::Rows(records) => {
                batch.push(records);
                Full::from(batch.rows() >= batch_rows)
            }
            Item::Drain { done, stop: then_stop } => {
                drained.push(done);
                stop |= then_stop;
                Full::Yes
            }
        })
        .await;
        let started = Instant::now();
        batch
            .write_local(&model, |_, rows, result| {
                let Err(e) = result else { return };
                let reason = match e.status.as_u16() {
                    503 => "unavailable",
                    s if (400..500).contains(&s) => "rejected",
                    _ => "error",
                };
                tracing::warn!(model = %model.name, rows, code = e.code, message = %e.message, "predictions not captured");
                if let Some(m) = &metrics {
                    m.capture_dropped.with_label_values(&[&model.name, reason]).inc_by(rows as u64);
                }
            })
            .await;
        if let (Some(m), true) = (&metrics, batch.rows() > 0) {
            m.capture.observe(started.elapsed().as_secs_f64());
        }
        drained.into_iter().for_each(|done| {
            let _ = done.send(());
        });
        if stop || !open {
            return;
        }
    }
}

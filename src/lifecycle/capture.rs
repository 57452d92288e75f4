//! The predictor's capture: each model's answered rows wait in a queue bounded in rows, and one
//! worker per model writes what arrives within [`batching::LINGER`] to the collector in one WAL
//! append. An answer never waits for the write (the predictor's traffic comes first); rows that
//! cannot be stored are dropped and counted, never lost silently. `/v1/flush` and a graceful stop
//! write the queues first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anchorwatch_collector::ApiError;
use anchorwatch_collector::decode::Table;
use anchorwatch_collector::schema::{FeatureKind, ModelSchema, ValueKind};
use anchorwatch_collector::{Collector, ModelCollector};
use arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::input::{Column, FeatureBatch};
use super::metrics::Metrics;
use super::predictor::{Labels, Predicted};
use crate::batching::{self, Batch, Full, RETRY_FOR, Rows};

/// What a model's capture queue carries.
enum Item {
    /// One answered request; its rows hold as many of the lane's row permits.
    Rows(Answered),
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

    /// Queues one answered request without waiting; when the queue has no room for its rows or
    /// is stopped, drops and counts them.
    pub fn submit(&self, model: &str, records: Answered) {
        let Some(lane) = self.lanes.get(model) else { return };
        let rows = records.batch.rows;
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
    async fn write(&self, batch: &Batch<Answered>, stop_at: Option<tokio::time::Instant>) {
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

/// One answered request, as capture holds it until its rows are written: the request's typed
/// columns and the model's outputs, turned into Arrow by the worker, many requests at once.
pub struct Answered {
    /// The validated request.
    pub batch: Arc<FeatureBatch>,
    /// One per row.
    pub ids: Vec<String>,
    /// What the model said.
    pub predicted: Predicted,
    /// The version that answered.
    pub version: u32,
    /// When the request arrived, µs since the epoch: the rows' event time.
    pub arrived_us: i64,
}

impl Rows for Answered {
    fn count(items: &[Self]) -> usize {
        items.iter().map(|a| a.batch.rows).sum()
    }

    async fn ingest(model: &ModelCollector, items: &[Self]) -> Result<(), ApiError> {
        let batch = columns(&model.schema, items).map_err(|e| match e {
            // Counted as `rejected`; the other requests of the write are written alone.
            Misfit::Output(e) => ApiError::bad_request("wrong_type", e),
            // Counted as `error`, and logged as one.
            Misfit::Bug(e) => ApiError::internal(&format!("capture of model {}: {e}", model.name)),
        })?;
        model.ingest_batches(Table::Predictions, &[batch]).await.map(drop)
    }
}

/// Why answered rows could not be turned into the stored columns.
#[derive(Debug)]
enum Misfit {
    /// The model's output does not fit the schema (scores, prediction kind).
    Output(String),
    /// The request's columns do not match the schema: a bug here, not the model's fault.
    Bug(String),
}

/// The rows of `items` in the stored columns, built straight from the typed columns. The
/// collector then validates them with the rules of the Arrow IPC format.
fn columns(schema: &ModelSchema, items: &[Answered]) -> Result<RecordBatch, Misfit> {
    let n = Answered::count(items);
    // The request was validated against this model's schema: features in the schema's order.
    if let Some(a) = items.iter().find(|a| a.batch.columns.len() != schema.features.len()) {
        let (got, want) = (a.batch.columns.len(), schema.features.len());
        return Err(Misfit::Bug(format!("a request with {got} feature columns for a schema of {want}")));
    }
    let mut ids = StringBuilder::with_capacity(n, n * 36);
    let mut times = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut versions = StringBuilder::with_capacity(n, n * 4);
    for a in items {
        let version = format!("v{}", a.version);
        for id in &a.ids {
            ids.append_value(id);
            times.append_value(a.arrived_us);
            versions.append_value(&version);
        }
    }
    let mut out: Vec<ArrayRef> = vec![Arc::new(ids.finish()), Arc::new(times.finish()), Arc::new(versions.finish())];
    for (j, feature) in schema.features.iter().enumerate() {
        let mismatch = || Misfit::Bug(format!("feature `{}` holds values of another kind", feature.name));
        out.push(match feature.kind {
            // Missing values: NaN in the request's columns, null in the store.
            FeatureKind::Numerical => {
                let mut b = Float64Builder::with_capacity(n);
                for a in items {
                    let Some(Column::Num(v)) = a.batch.columns.get(j) else { return Err(mismatch()) };
                    v.iter().for_each(|x| b.append_option((!x.is_nan()).then_some(*x)));
                }
                Arc::new(b.finish())
            }
            FeatureKind::Categorical | FeatureKind::Text => {
                let mut b = StringBuilder::with_capacity(n, n * 8);
                for a in items {
                    let Some(Column::Str(v)) = a.batch.columns.get(j) else { return Err(mismatch()) };
                    v.iter().for_each(|x| b.append_option(x.as_deref()));
                }
                Arc::new(b.finish())
            }
            FeatureKind::Boolean => {
                let mut b = BooleanBuilder::with_capacity(n);
                for a in items {
                    let Some(Column::Bool(v)) = a.batch.columns.get(j) else { return Err(mismatch()) };
                    v.iter().for_each(|x| b.append_option(*x));
                }
                Arc::new(b.finish())
            }
            FeatureKind::Embedding => {
                let dim = feature.dim.unwrap_or(1);
                let mut b = FixedSizeListBuilder::with_capacity(Float32Builder::with_capacity(n * dim), dim as i32, n);
                for a in items {
                    let Some(Column::Emb(v, d)) = a.batch.columns.get(j) else { return Err(mismatch()) };
                    if *d != dim {
                        return Err(mismatch());
                    }
                    for row in v.chunks(dim) {
                        // A vector with a missing element is a missing vector.
                        let missing = row.iter().any(|x| x.is_nan());
                        row.iter().for_each(|x| b.values().append_value(if missing { 0.0 } else { *x }));
                        b.append(!missing);
                    }
                }
                Arc::new(b.finish())
            }
        });
    }
    out.push(prediction_column(schema.prediction, items)?);
    for class in 0..schema.scores.len() {
        let mut b = Float64Builder::with_capacity(n);
        for a in items {
            for i in 0..a.batch.rows {
                match a.predicted.scores(i) {
                    Some(p) if p.len() != schema.scores.len() => {
                        return Err(Misfit::Output(format!(
                            "model version v{} gives {} probabilities, the schema has {} score classes",
                            a.version,
                            p.len(),
                            schema.scores.len()
                        )));
                    }
                    // A model's NaN (say, for missing inputs) is stored as a missing score.
                    Some(p) => b.append_option(p[class].is_finite().then_some(f64::from(p[class]))),
                    None => b.append_null(),
                }
            }
        }
        out.push(Arc::new(b.finish()));
    }
    RecordBatch::try_new(schema.predictions_schema(), out).map_err(|e| Misfit::Bug(e.to_string()))
}

/// The prediction column: a regressor's values, or a classifier's labels as the schema's kind.
fn prediction_column(kind: ValueKind, items: &[Answered]) -> Result<ArrayRef, Misfit> {
    let n = Answered::count(items);
    let wrong = |a: &Answered, what: &str| {
        Misfit::Output(format!("model version v{} gives {what} for a {kind:?} prediction", a.version))
    };
    Ok(match kind {
        ValueKind::Numerical => {
            let mut b = Float64Builder::with_capacity(n);
            for a in items {
                let Predicted::Values(v) = &a.predicted else { return Err(wrong(a, "class labels")) };
                b.append_slice(v);
            }
            Arc::new(b.finish())
        }
        ValueKind::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for a in items {
                match &a.predicted {
                    Predicted::Classes { labels: Labels::Int(l), .. } => l.iter().for_each(|x| b.append_value(*x != 0)),
                    Predicted::Classes { labels: Labels::Str(l), .. } => {
                        l.iter().for_each(|x| b.append_value(matches!(x.as_str(), "true" | "True" | "1")))
                    }
                    Predicted::Values(_) => return Err(wrong(a, "numbers")),
                }
            }
            Arc::new(b.finish())
        }
        ValueKind::Categorical => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for a in items {
                match &a.predicted {
                    Predicted::Classes { labels: Labels::Int(l), .. } => {
                        l.iter().for_each(|x| b.append_value(x.to_string()))
                    }
                    Predicted::Classes { labels: Labels::Str(l), .. } => l.iter().for_each(|x| b.append_value(x)),
                    Predicted::Values(_) => return Err(wrong(a, "numbers")),
                }
            }
            Arc::new(b.finish())
        }
    })
}

#[cfg(test)]
mod tests {
    use anchorwatch_collector::decode::{DecodeContext, decode_batches};
    use anchorwatch_collector::schema::FeatureConfig;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float32Type, Float64Type};

    use super::*;

    fn schema() -> ModelSchema {
        let f = |name: &str, kind, dim| FeatureConfig { name: name.into(), kind, dim, nullable: true };
        ModelSchema {
            features: vec![
                f("age", FeatureKind::Numerical, None),
                f("region", FeatureKind::Categorical, None),
                f("vip", FeatureKind::Boolean, None),
                f("emb", FeatureKind::Embedding, Some(2)),
            ],
            prediction: ValueKind::Categorical,
            label: ValueKind::Categorical,
            scores: vec!["bad".into(), "good".into()],
        }
    }

    fn answered(rows: usize, columns: Vec<Column>, labels: Vec<i64>, probabilities: Vec<f32>, v: u32) -> Answered {
        Answered {
            batch: Arc::new(FeatureBatch { rows, columns, ids: vec![None; rows] }),
            ids: (0..rows).map(|i| format!("{v}-{i}")).collect(),
            predicted: Predicted::Classes { labels: Labels::Int(labels), probabilities: Some((2, probabilities)) },
            version: v,
            arrived_us: 1_700_000_000_000_000 + i64::from(v),
        }
    }

    #[test]
    fn rows_of_several_requests_become_one_valid_batch_with_nulls_for_missing_values() {
        let schema = schema();
        let items = [
            answered(
                2,
                vec![
                    Column::Num(vec![41.0, f64::NAN]),
                    Column::Str(vec![Some("north".into()), None]),
                    Column::Bool(vec![Some(true), None]),
                    Column::Emb(vec![0.5, 1.5, f32::NAN, 2.0], 2),
                ],
                vec![1, 0],
                vec![0.25, 0.75, f32::NAN, f32::NAN],
                1,
            ),
            answered(
                1,
                vec![
                    Column::Num(vec![7.0]),
                    Column::Str(vec![Some("south".into())]),
                    Column::Bool(vec![Some(false)]),
                    Column::Emb(vec![3.0, 4.0], 2),
                ],
                vec![1],
                vec![0.1, 0.9],
                2,
            ),
        ];
        let built = columns(&schema, &items).unwrap();
        // The collector takes it as it would an Arrow IPC body.
        let cx = DecodeContext { schema: &schema, now_us: 0 };
        let stored = decode_batches(&cx, Table::Predictions, &[built]).unwrap();
        assert_eq!(stored.num_rows(), 3);
        let column = |name: &str| stored.column_by_name(name).unwrap().clone();
        let ids: Vec<_> = column("prediction_id").as_string::<i32>().iter().flatten().map(str::to_string).collect();
        assert_eq!(ids, ["1-0", "1-1", "2-0"]);
        let versions: Vec<_> =
            column("model_version").as_string::<i32>().iter().flatten().map(str::to_string).collect();
        assert_eq!(versions, ["v1", "v1", "v2"]);
        let age = column("age");
        assert_eq!((age.as_primitive::<Float64Type>().value(0), age.is_null(1)), (41.0, true));
        assert_eq!(
            column("region").as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("north"), None, Some("south")]
        );
        assert_eq!(column("vip").as_boolean().iter().collect::<Vec<_>>(), [Some(true), None, Some(false)]);
        // A vector with a missing element is missing as a whole.
        let emb = column("emb");
        let emb = emb.as_fixed_size_list();
        assert_eq!((emb.is_null(0), emb.is_null(1), emb.is_null(2)), (false, true, false));
        assert_eq!(emb.value(0).as_primitive::<Float32Type>().values(), &[0.5, 1.5]);
        assert_eq!(emb.value(2).as_primitive::<Float32Type>().values(), &[3.0, 4.0]);
        assert_eq!(
            column("prediction").as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("1"), Some("0"), Some("1")]
        );
        let (bad, good) = (column("score_bad"), column("score_good"));
        assert_eq!((bad.as_primitive::<Float64Type>().value(0), bad.is_null(1)), (0.25, true));
        assert_eq!((good.as_primitive::<Float64Type>().value(0), good.is_null(1)), (0.75, true));
        assert_eq!(good.as_primitive::<Float64Type>().value(2), f64::from(0.9f32));
        let times = column("timestamp");
        let times = times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(times.value(2) - times.value(0), 1, "each request keeps its own arrival time");
    }

    #[test]
    fn outputs_that_do_not_fit_the_schema_are_refused() {
        let schema = schema();
        let columns_of = || {
            vec![
                Column::Num(vec![1.0]),
                Column::Str(vec![None]),
                Column::Bool(vec![None]),
                Column::Emb(vec![0.0, 0.0], 2),
            ]
        };
        let mut three_scores = answered(1, columns_of(), vec![1], vec![0.1, 0.2, 0.7], 1);
        three_scores.predicted =
            Predicted::Classes { labels: Labels::Int(vec![1]), probabilities: Some((3, vec![0.1, 0.2, 0.7])) };
        let e = columns(&schema, &[three_scores]).unwrap_err();
        assert!(matches!(&e, Misfit::Output(m) if m.contains("v1 gives 3 probabilities")), "{e:?}");
        let mut regressor = answered(1, columns_of(), vec![1], vec![0.5, 0.5], 2);
        regressor.predicted = Predicted::Values(vec![0.5]);
        let e = columns(&schema, &[regressor]).unwrap_err();
        assert!(matches!(&e, Misfit::Output(m) if m.contains("v2 gives numbers for a Categorical")), "{e:?}");
        // Columns that do not match the schema are a bug, not the model's fault.
        let short = answered(1, columns_of()[..3].to_vec(), vec![1], vec![0.5, 0.5], 1);
        assert!(matches!(columns(&schema, &[short]).unwrap_err(), Misfit::Bug(_)));
    }
}

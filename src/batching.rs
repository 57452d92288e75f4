//! Gathering queued captures into batches: one write (a WAL append and its sync, or a POST) per
//! batch instead of one per request. Shared by the proxy's capture worker and the predictor's.

use std::time::Duration;

use anchorwatch_collector::decode::Table;
use anchorwatch_collector::{ApiError, ModelCollector};
use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;

/// How long a batch waits for more items after its first one, at most. Batches of this span cost
/// at most about 50 writes a second (fewer when they fill sooner). Rows reach Parquet at the
/// collector's `flush_interval` anyway, so the wait is not seen there; a crash loses at most what
/// waits in the queue.
pub const LINGER: Duration = Duration::from_millis(20);

/// How long a batch is retried while the collector is overloaded, at most: meanwhile the queue
/// fills and sheds load.
pub const RETRY_FOR: Duration = Duration::from_secs(5);

/// Waits for an item, then hands `take` every item that arrives within `linger` of it, until
/// `take` answers that the batch is full. Returns `false` once the queue is closed and empty:
/// nothing more will come.
pub async fn gather<T>(rx: &mut mpsc::Receiver<T>, linger: Duration, mut take: impl FnMut(T) -> Full) -> bool {
    let Some(first) = rx.recv().await else { return false };
    let deadline = tokio::time::Instant::now() + linger;
    let mut next = Some(first);
    while let Some(item) = next.take() {
        if take(item) == Full::Yes {
            break;
        }
        next = match rx.try_recv() {
            Ok(item) => Some(item),
            // Closed: write what there is; the next call answers `false`.
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => tokio::time::timeout_at(deadline, rx.recv()).await.ok().flatten(),
        };
    }
    true
}

/// Whether a batch takes more items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Write it now.
    Yes,
    /// It takes more, within the linger.
    No,
}

impl From<bool> for Full {
    fn from(full: bool) -> Self {
        if full { Full::Yes } else { Full::No }
    }
}

/// Prediction rows as a capture path holds them: records parsed from JSON (the proxy), or the
/// typed columns of answered requests (the predictor, `lifecycle::capture::Answered`).
pub trait Rows: Sized + Sync {
    /// Rows in `items`.
    fn count(items: &[Self]) -> usize;
    /// Validates and stores `items` through the collector's write path.
    fn ingest(model: &ModelCollector, items: &[Self]) -> impl Future<Output = Result<(), ApiError>> + Send;
}

impl Rows for Value {
    fn count(items: &[Self]) -> usize {
        items.len()
    }
    async fn ingest(model: &ModelCollector, items: &[Self]) -> Result<(), ApiError> {
        model.ingest_records(Table::Predictions, items).await.map(drop)
    }
}

/// The prediction rows of several requests, bound for one write, and where each request's
/// items end.
pub struct Batch<T> {
    items: Vec<T>,
    ends: Vec<usize>,
    rows: usize,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Self { items: Vec::new(), ends: Vec::new(), rows: 0 }
    }
}

impl<T: Rows> Batch<T> {
    /// Adds one request's rows.
    pub fn push(&mut self, items: Vec<T>) {
        self.rows += T::count(&items);
        self.items.extend(items);
        self.ends.push(self.items.len());
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Requests held.
    pub fn requests(&self) -> usize {
        self.ends.len()
    }

    /// Each request's items, in order.
    fn groups(&self) -> impl Iterator<Item = &[T]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| &self.items[start..end])
    }

    /// Writes the batch to a collector in this process and reports each write's outcome to
    /// `done(requests, rows, result)`. While the collector is overloaded (429: nothing was
    /// written) it retries, with backoff, until `give_up`; the queue meanwhile fills and sheds
    /// load. Other failures are not retried: a 503 from the WAL may come after the rows were
    /// written, and a retry could store them twice. When the collector rejects the batch (a
    /// 4xx), each request is written alone, so that one request that does not fit the schema
    /// does not sink the others.
    pub async fn write_local(
        &self,
        model: &ModelCollector,
        give_up: tokio::time::Instant,
        mut done: impl FnMut(usize, usize, Result<(), ApiError>),
    ) {
        if self.items.is_empty() {
            return;
        }
        match ingest_retrying(model, &self.items, give_up).await {
            Err(e) if e.status.is_client_error() && self.requests() > 1 => {
                for group in self.groups() {
                    done(1, T::count(group), ingest_retrying(model, group, give_up).await);
                }
            }
            result => done(self.requests(), self.rows(), result),
        }
    }
}

async fn ingest_retrying<T: Rows>(
    model: &ModelCollector,
    items: &[T],
    give_up: tokio::time::Instant,
) -> Result<(), ApiError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match T::ingest(model, items).await {
            Ok(()) => return Ok(()),
            Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
                if tokio::time::Instant::now() + backoff > give_up {
                    // Still overloaded when the retries run out: unavailable, not the caller's fault.
                    return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code, e.message));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `gather`, full at `full_at` items: whether the queue is still open, and the batch.
    async fn gather_up_to(rx: &mut mpsc::Receiver<i32>, full_at: usize) -> (bool, Vec<i32>) {
        let mut batch = Vec::new();
        let open = gather(rx, LINGER, |i| {
            batch.push(i);
            Full::from(batch.len() == full_at)
        })
        .await;
        (open, batch)
    }

    #[tokio::test]
    async fn batches_what_is_queued_up_to_full_and_ends_when_closed() {
        let (tx, mut rx) = mpsc::channel(16);
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
        // Full after three: the first batch stops there, the rest form the next.
        assert_eq!(gather_up_to(&mut rx, 3).await, (true, vec![0, 1, 2]));
        // The queue stays open but nothing more comes: the batch ends with the linger.
        assert_eq!(gather_up_to(&mut rx, 100).await, (true, vec![3, 4]));
        // Closed with an item left: that item, then the end.
        tx.send(5).await.unwrap();
        drop(tx);
        assert_eq!(gather_up_to(&mut rx, 100).await, (true, vec![5]));
        assert_eq!(gather_up_to(&mut rx, 100).await, (false, vec![]));
    }

    #[test]
    fn a_batch_keeps_each_request_s_records_apart() {
        let mut batch = Batch::<Value>::default();
        batch.push(vec![Value::from(1), Value::from(2)]);
        batch.push(vec![Value::from(3)]);
        batch.push(vec![Value::from(4), Value::from(5), Value::from(6)]);
        assert_eq!((batch.requests(), batch.rows()), (3, 6));
        let groups: Vec<Vec<i64>> = batch.groups().map(|g| g.iter().filter_map(Value::as_i64).collect()).collect();
        assert_eq!(groups, [vec![1, 2], vec![3], vec![4, 5, 6]]);
    }
}

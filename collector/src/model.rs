//! The running collector: one WAL writer and one flusher per model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::TimestampMicrosecondType;
use axum::http::StatusCode;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::config::CollectorConfig;
use crate::decode::{self, DecodeContext, Format, Table};
use crate::error::{ApiError, Error, Result};
use crate::layout::{Partition, file_name};
use crate::metrics::Metrics;
use crate::schema::ModelSchema;
use crate::store::Store;
use crate::wal::{self, AppendError, Sealed, Wal, WalOptions};

/// All models' collectors.
pub struct Collector {
    models: BTreeMap<String, Arc<ModelCollector>>,
    /// The collector's metrics.
    pub metrics: Metrics,
    /// The store everything is written to.
    pub store: Store,
}

impl Collector {
    /// Opens every model: replays what its WAL holds into Parquet, then starts its writer.
    pub async fn open(
        config: &CollectorConfig,
        store: Store,
        models: Vec<(String, ModelSchema)>,
        metrics: Metrics,
    ) -> Result<Self> {
        let mut opened = BTreeMap::new();
        for (name, schema) in models {
            let model = ModelCollector::open(config, &store, name.clone(), schema, metrics.clone()).await?;
            opened.insert(name, Arc::new(model));
        }
        Ok(Self { models: opened, metrics, store })
    }

    /// A configured model's collector.
    pub fn model(&self, name: &str) -> Option<&Arc<ModelCollector>> {
        self.models.get(name)
    }

    /// Names of the configured models.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// Writes everything acknowledged so far to Parquet, for every model.
    pub async fn flush(&self) -> Result<(), String> {
        for model in self.models.values() {
            model.wal.seal().await.map_err(|e| format!("model {}: {e}", model.name))?;
        }
        Ok(())
    }

    /// Flushes and stops every model's writer and flusher.
    pub fn shutdown(self) {
        for (_, model) in self.models {
            match Arc::try_unwrap(model) {
                Ok(model) => model.shutdown(),
                Err(model) => {
                    tracing::warn!(model = %model.name, "model still in use at shutdown; its WAL is replayed at next start")
                }
            }
        }
    }
}

/// What an accepted request wrote.
pub struct Receipt {
    /// The stored batch (ids, times and all).
    pub batch: RecordBatch,
}

impl Receipt {
    /// Rows accepted.
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The prediction ids, in request order.
    pub fn prediction_ids(&self) -> impl Iterator<Item = &str> {
        self.batch.column(0).as_string::<i32>().iter().map(|v| v.unwrap_or_default())
    }
}

/// One model's collector.
pub struct ModelCollector {
    /// Model name.
    pub name: String,
    /// The fixed schema.
    pub schema: Arc<ModelSchema>,
    wal: Wal,
    max_pending: u64,
    metrics: Metrics,
    stopping: Arc<AtomicBool>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl ModelCollector {
    async fn open(
        config: &CollectorConfig,
        store: &Store,
        name: String,
        schema: ModelSchema,
        metrics: Metrics,
    ) -> Result<Self> {
        let wal_dir = match (&config.wal_dir, store.local_root()) {
            (Some(dir), _) => dir.join(&name),
            (None, Some(root)) => root.join(&name).join("wal"),
            (None, None) => {
                return Err(Error::Config(format!(
                    "collector.wal_dir: not set, and store.root `{}` is object storage; the write-ahead log needs a \
                     folder on local disk, one per process, e.g. wal_dir = \"/var/lib/anchorwatch/wal\" (docs/store.md)",
                    store.url()
                )));
            }
        };
        // The writer id doubles as the check that the folder is usable: created, written, synced.
        let unusable = |e: &dyn std::fmt::Display| {
            Error::Config(format!(
                "collector.wal_dir: the write-ahead log folder {} is not usable: {e}",
                wal_dir.display()
            ))
        };
        std::fs::create_dir_all(&wal_dir).map_err(|e| unusable(&e))?;
        let writer = match wal::writer_id(&wal_dir) {
            Ok(id) => id,
            Err(Error::Wal(e)) => return Err(unusable(&e)),
            Err(e) => return Err(e),
        };
        let flusher = Flusher {
            model: name.clone(),
            writer,
            store: store.clone(),
            wal_dir: wal_dir.clone(),
            schema: schema.clone(),
            zstd_level: config.zstd_level,
            metrics: metrics.clone(),
        };
        let segments = wal::list_segments(&wal_dir)?;
        let next_seq = segments.last().map_or(1, |(seq, _)| seq + 1);
        if !segments.is_empty() {
            tracing::info!(model = %name, segments = segments.len(), "replaying the write-ahead log");
        }
        for (seq, path) in segments {
            flusher.flush_segment(seq, &path).await?;
        }
        let pending = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (sealed_tx, sealed_rx) = std::sync::mpsc::channel();
        let options = WalOptions {
            sync: config.sync,
            sync_interval: config.sync_interval,
            max_segment_bytes: config.max_segment_bytes,
            max_segment_age: config.flush_interval,
            queue: config.max_queued_requests,
        };
        let wal = Wal::start(wal_dir, next_seq, options, pending.clone(), sealed_tx)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let handle = tokio::runtime::Handle::current();
        let stop = stopping.clone();
        let max_pending = config.max_pending_bytes;
        let thread = std::thread::Builder::new()
            .name(format!("flush-{name}"))
            .spawn(move || flusher.run(sealed_rx, handle, pending, max_pending, stop))?;
        metrics.wal_bytes.with_label_values(&[&name]).set(0);
        metrics.buffer_fill.with_label_values(&[&name]).set(0.0);
        Ok(Self { name, schema: Arc::new(schema), wal, max_pending, metrics, stopping, flusher: Some(thread) })
    }

    /// Validates a request body and makes it durable. On any error nothing of it is written.
    pub async fn ingest(&self, table: Table, format: Format, body: &[u8]) -> Result<Receipt, ApiError> {
        self.admit()?;
        let batch = decode::decode(&self.context(), table, format, body)?;
        self.write(table, batch, body.len()).await
    }

    /// Validates records already parsed, as `ingest` does a JSON body of them, and makes them
    /// durable: the path of in-process capture (the predictor, the proxy's local mode), which
    /// skips writing JSON only to parse it again. No body bytes are counted.
    pub async fn ingest_records(&self, table: Table, records: &[serde_json::Value]) -> Result<Receipt, ApiError> {
        self.admit()?;
        let batch = decode::decode_records(&self.context(), table, records)?;
        self.write(table, batch, 0).await
    }

    /// Validates Arrow batches built in this process, as `ingest` does an Arrow IPC stream of
    /// them, and makes them durable. No body bytes are counted.
    pub async fn ingest_batches(&self, table: Table, batches: &[RecordBatch]) -> Result<Receipt, ApiError> {
        self.admit()?;
        let batch = decode::decode_batches(&self.context(), table, batches)?;
        self.write(table, batch, 0).await
    }

    /// Refuses new rows while too much waits to be written to Parquet.
    fn admit(&self) -> Result<(), ApiError> {
        let pending = self.wal.pending.load(Ordering::Relaxed);
        if pending >= self.max_pending {
            return Err(ApiError::overloaded(
                format!(
                    "model {}: {pending} bytes wait to be written to Parquet (limit collector.max_pending_bytes = {}); retry later",
                    self.name, self.max_pending
                ),
                1,
            ));
        }
        Ok(())
    }

    fn context(&self) -> DecodeContext<'_> {
        DecodeContext { schema: &self.schema, now_us: chrono::Utc::now().timestamp_micros() }
    }

    /// Appends a validated batch to the WAL and waits until it is durable.
    async fn write(&self, table: Table, batch: RecordBatch, body_bytes: usize) -> Result<Receipt, ApiError> {
        let frame = wal::encode_frame(table, &batch).map_err(|e| ApiError::internal(&e))?;
        let started = Instant::now();
        match self.wal.append(frame).await {
            Ok(()) => {}
            Err(AppendError::Full) => {
                return Err(ApiError::overloaded(
                    format!("model {}: the write-ahead log queue is full; retry later", self.name),
                    1,
                ));
            }
            Err(AppendError::Failed(e)) => {
                tracing::error!(model = %self.name, error = %e, "WAL append failed");
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the write-ahead log cannot take writes now; retry later",
                ));
            }
        }
        self.metrics.wal_append.observe(started.elapsed().as_secs_f64());
        let labels = [self.name.as_str(), table.as_str()];
        self.metrics.rows.with_label_values(&labels).inc_by(batch.num_rows() as u64);
        self.metrics.bytes.with_label_values(&labels).inc_by(body_bytes as u64);
        let pending = self.wal.pending.load(Ordering::Relaxed);
        self.metrics.wal_bytes.with_label_values(&[&self.name]).set(pending as i64);
        self.metrics.buffer_fill.with_label_values(&[&self.name]).set(pending as f64 / self.max_pending as f64);
        Ok(Receipt { batch })
    }

    fn shutdown(self) {
        let ModelCollector { wal, flusher, stopping, .. } = self;
        stopping.store(true, Ordering::Relaxed);
        // Dropping the WAL seals the last segment and closes the flusher's queue.
        drop(wal);
        if let Some(t) = flusher {
            let _ = t.join();
        }
    }
}

/// Turns sealed WAL segments into Parquet files.
struct Flusher {
    model: String,
    writer: String,
    store: Store,
    wal_dir: PathBuf,
    schema: ModelSchema,
    zstd_level: i32,
    metrics: Metrics,
}

impl Flusher {
    fn run(
        self,
        sealed: std::sync::mpsc::Receiver<Sealed>,
        rt: tokio::runtime::Handle,
        pending: Arc<std::sync::atomic::AtomicU64>,
        max_pending: u64,
        stopping: Arc<AtomicBool>,
    ) {
        while let Ok(Sealed { segment, done }) = sealed.recv() {
            let mut result = Ok(());
            if let Some((seq, path, bytes)) = segment {
                let mut backoff = Duration::from_millis(100);
                loop {
                    match rt.block_on(self.flush_segment(seq, &path)) {
                        Ok(()) => {
                            let left = pending.fetch_sub(bytes, Ordering::Relaxed).saturating_sub(bytes);
                            self.metrics.wal_bytes.with_label_values(&[&self.model]).set(left as i64);
                            self.metrics
                                .buffer_fill
                                .with_label_values(&[&self.model])
                                .set(left as f64 / max_pending as f64);
                            break;
                        }
                        Err(e) => {
                            self.metrics.flush_errors.with_label_values(&[&self.model]).inc();
                            tracing::error!(model = %self.model, segment = seq, error = %e, retry_in = ?backoff, "flush to Parquet failed");
                            if stopping.load(Ordering::Relaxed) {
                                result = Err(format!("flush failed: {e}; the WAL keeps the rows for the next start"));
                                break;
                            }
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                    }
                }
            }
            for d in done {
                let _ = d.send(result.clone());
            }
        }
    }

    /// Writes one segment's rows as Parquet, one file per table and partition, then deletes it.
    async fn flush_segment(&self, seq: u64, path: &std::path::Path) -> Result<()> {
        let started = Instant::now();
        let frames = wal::read_segment(path)?;
        for table in [Table::Predictions, Table::Labels] {
            let (schema, ts_column) = match table {
                Table::Predictions => (self.schema.predictions_schema(), 1),
                Table::Labels => (self.schema.labels_schema(), 2),
            };
            let batches: Vec<&RecordBatch> = frames.iter().filter(|(t, _)| *t == table).map(|(_, b)| b).collect();
            if batches.is_empty() {
                continue;
            }
            let all = concat_batches(&schema, batches)?;
            let times = all.column(ts_column).as_primitive::<TimestampMicrosecondType>();
            let mut partitions: BTreeMap<Partition, Vec<u32>> = BTreeMap::new();
            for (i, t) in times.values().iter().enumerate() {
                partitions.entry(Partition::of(table, *t)).or_default().push(i as u32);
            }
            let single = partitions.len() == 1;
            for (partition, rows) in partitions {
                let part = if single { all.clone() } else { take_record_batch(&all, &UInt32Array::from(rows))? };
                let data = self.encode(&part)?;
                let dest = partition.dir(&self.model, table).clone().join(file_name(&self.writer, seq));
                self.store.put(&dest, data).await?;
                self.metrics.files_written.with_label_values(&[&self.model, table.as_str()]).inc();
            }
        }
        std::fs::remove_file(path)?;
        wal::sync_dir(&self.wal_dir)?;
        self.metrics.flush_duration.with_label_values(&[&self.model]).observe(started.elapsed().as_secs_f64());
        tracing::debug!(model = %self.model, segment = seq, elapsed = ?started.elapsed(), "flushed a WAL segment to Parquet");
        Ok(())
    }

    fn encode(&self, batch: &RecordBatch) -> Result<Bytes> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.zstd_level)?))
            .set_created_by(format!("anchorwatch {}", env!("CARGO_PKG_VERSION")))
            .build();
        let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 4);
        let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
        writer.write(batch)?;
        writer.close()?;
        Ok(Bytes::from(buf))
    }
}

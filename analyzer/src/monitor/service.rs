//! The analysis loop of each model, its persisted state, and the reference's life cycle.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anchorwatch_collector::compact;
use anchorwatch_collector::decode::EVENT_TIMES_US;
use anchorwatch_collector::schema::{FeatureKind, ModelSchema};
use anchorwatch_collector::store::Store;
use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use bytes::Bytes;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock, watch};

use super::config::{AnalysisConfig, Windows};
use super::data::{Frame, FrameBuilder};
use super::metrics::Metrics;
use super::profile::{Basis, FileProfile, Segment};
use super::reference::{self, Profile, Reference};
use super::window::{self, Precomputed, WindowResult};
use super::{Error, Result, labels, results};
use crate::sql;

const HOUR_US: i64 = 3_600_000_000;

/// What has been analysed, stored as `<model>/results/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The reference fingerprint the windows were computed against.
    pub reference_version: String,
    /// Prediction files seen, with their sizes.
    pub prediction_files: BTreeMap<String, u64>,
    /// Label files seen, with their sizes.
    pub label_files: BTreeMap<String, u64>,
    /// Windows computed: start (µs) → rows.
    pub windows: BTreeMap<i64, usize>,
    /// The `window_rows` that `row_windows` were cut with.
    #[serde(default)]
    pub window_rows: Option<usize>,
    /// Row-count windows computed, in order (block `i` is element `i`); the last one may be
    /// incomplete.
    #[serde(default)]
    pub row_windows: Vec<RowWindow>,
    /// The newest window's result, exported as metrics (also after a restart).
    pub latest: Option<(i64, WindowResult)>,
    /// Whether the label join state of profiled analysis holds every label file in
    /// `label_files` (it is built anew when not).
    #[serde(default)]
    pub label_join: bool,
}

/// Where a row-count window ends: enough to tell whether its rows are still the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowWindow {
    /// Rows in it (`window_rows`, or fewer for the last block).
    pub rows: usize,
    /// Event time of its first row (µs).
    pub first: i64,
    /// Event time of its last row (µs).
    pub last: i64,
    /// `prediction_id` of its last row.
    pub last_id: String,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// Whether no reference is available yet (too little traffic).
    pub waiting_for_reference: bool,
    /// Window starts (µs) recomputed by this run: event-time windows, or the row-count
    /// windows' first event times.
    pub windows: Vec<i64>,
    /// Row-count windows (`window_rows`) recomputed by this run, by number.
    pub row_windows: Vec<u64>,
    /// Whether the rolling "last N rows" window was recomputed.
    pub rolling: bool,
}

/// What a model's monitor publishes after every run, changed or not: the newest window's result.
/// Alert rules are evaluated on it, so time-based conditions advance even when no data arrives.
#[derive(Debug, Clone)]
pub struct Published {
    /// When the run finished (µs since the epoch).
    pub at: i64,
    /// The newest tumbling window: its start (µs) and result; `None` before the first one.
    pub latest: Option<(i64, Arc<WindowResult>)>,
}

/// The continuous analysis of one model.
pub struct ModelMonitor {
    /// Model name.
    pub name: String,
    schema: ModelSchema,
    config: AnalysisConfig,
    store: Store,
    /// Folder that relative reference paths are resolved against.
    base: PathBuf,
    memory_limit: usize,
    metrics: Metrics,
    reference: RwLock<Option<Arc<Reference>>>,
    /// What file profiles are cut against, for the active reference.
    basis: std::sync::Mutex<Option<Arc<Basis>>>,
    state: Mutex<State>,
    published: watch::Sender<Published>,
    /// The failures since the last successful run; `None` while runs succeed.
    failing: std::sync::Mutex<Option<Failing>>,
    /// Prediction files left out because their hour lies outside the accepted event times,
    /// counted once each.
    out_of_range: std::sync::Mutex<BTreeSet<String>>,
}

/// Analysis runs that failed in a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Failing {
    /// When the first of them failed (µs since the epoch).
    pub since: i64,
    /// How many failed.
    pub runs: u64,
    /// The last one's error.
    pub error: String,
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn date(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().format("%Y-%m-%d").to_string()
}

/// The hour partition (start, µs) a prediction file sits in, from its hive path.
fn hour_of(path: &str) -> Option<i64> {
    let date = path.split("date=").nth(1)?.get(..10)?;
    let hour: u32 = path.split("hour=").nth(1)?.get(..2)?.parse().ok()?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(hour, 0, 0)?.and_utc().timestamp_micros())
}

/// The paths of `files` (path, size) in groups of at most `limit` bytes (a larger file alone).
fn by_size(files: Vec<(&String, &u64)>, limit: u64) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0;
    for (path, size) in files {
        match groups.last_mut() {
            Some(group) if bytes + size <= limit => group.push(path.clone()),
            _ => {
                groups.push(vec![path.clone()]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    groups
}

/// The first `rows` rows of `pending`, splitting a batch when needed.
fn take_rows(pending: &mut VecDeque<RecordBatch>, mut rows: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    while rows > 0 {
        let Some(b) = pending.pop_front() else { break };
        if b.num_rows() <= rows {
            rows -= b.num_rows();
            out.push(b);
        } else {
            pending.push_front(b.slice(rows, b.num_rows() - rows));
            out.push(b.slice(0, rows));
            rows = 0;
        }
    }
    out
}

/// A block's row count, first and last event time and last `prediction_id`.
fn row_window_key(block: &[RecordBatch]) -> Result<RowWindow> {
    let (Some(head), Some(tail)) = (block.first(), block.last()) else {
        return Err(Error::Reference("an empty row window".into()));
    };
    let value = |b: &RecordBatch, name: &str, row: usize, to: &DataType| -> Result<ArrayRef> {
        let column = b.column_by_name(name).ok_or_else(|| Error::Reference(format!("no `{name}` column")))?;
        Ok(arrow::compute::cast(&column.slice(row, 1), to)?)
    };
    let time = |b: &RecordBatch, row: usize| -> Result<i64> {
        Ok(value(b, "timestamp", row, &DataType::Int64)?.as_primitive::<Int64Type>().value(0))
    };
    let last_id = value(tail, "prediction_id", tail.num_rows() - 1, &DataType::Utf8)?;
    Ok(RowWindow {
        rows: block.iter().map(RecordBatch::num_rows).sum(),
        first: time(head, 0)?,
        last: time(tail, tail.num_rows() - 1)?,
        last_id: last_id.as_string::<i32>().value(0).to_string(),
    })
}

impl ModelMonitor {
    /// Sets up the monitor of one model; reads its saved state.
    pub async fn open(
        name: String,
        schema: ModelSchema,
        config: AnalysisConfig,
        store: Store,
        base: PathBuf,
        memory_limit: usize,
        metrics: Metrics,
    ) -> Result<Self> {
        let state_path = Path::from(format!("{name}/results/state.json"));
        let state = match store.object_store().get(&state_path).await {
            Ok(r) => serde_json::from_slice(&r.bytes().await?)?,
            Err(object_store::Error::NotFound { .. }) => State::default(),
            Err(e) => return Err(e.into()),
        };
        let latest = state.latest.as_ref().map(|(s, r): &(i64, WindowResult)| (*s, Arc::new(r.clone())));
        let (published, _) = watch::channel(Published { at: 0, latest });
        let monitor = Self {
            name,
            schema,
            config,
            store,
            base,
            memory_limit,
            metrics,
            reference: RwLock::default(),
            basis: std::sync::Mutex::default(),
            state: Mutex::new(state),
            published,
            failing: std::sync::Mutex::new(None),
            out_of_range: std::sync::Mutex::new(BTreeSet::new()),
        };
        if let Some((_, latest)) = &monitor.state.lock().await.latest {
            monitor.export(latest);
        }
        Ok(monitor)
    }

    fn reference_path(&self, format: &str) -> Path {
        Path::from(format!("{}/reference/reference.{format}", self.name))
    }

    fn profile_path(&self) -> Path {
        Path::from(format!("{}/reference/profile.json", self.name))
    }

    async fn save_reference(&self, data: Bytes, profile: Profile) -> Result<Arc<Reference>> {
        let mut reference = Reference::new(reference::decode(data.clone(), &profile.format)?, &self.schema, profile)?;
        let performance = reference.performance(&self.schema, &self.config).realized.clone();
        reference.profile.performance = performance;
        self.store.put(&self.reference_path(&reference.profile.format), data).await?;
        self.store.put(&self.profile_path(), serde_json::to_vec_pretty(&reference.profile)?.into()).await?;
        let reference = Arc::new(reference);
        *self.reference.write().await = Some(reference.clone());
        tracing::info!(model = %self.name, source = %reference.profile.source, rows = reference.profile.rows, "reference set");
        Ok(reference)
    }

    /// Replaces the reference with uploaded data (Parquet or CSV); every window is recomputed
    /// at the next run. Invalid data changes nothing.
    pub async fn upload_reference(&self, data: Bytes, format: &str) -> Result<Profile> {
        let _state = self.state.lock().await;
        let profile = Profile {
            source: "upload".into(),
            version: reference::fingerprint(&data),
            format: format.into(),
            prediction_column: self.config.reference_prediction_column.clone(),
            target_column: self.config.reference_target_column.clone(),
            rows: 0,
            performance: BTreeMap::new(),
        };
        Ok(self.save_reference(data, profile).await?.profile.clone())
    }

    /// The active reference: loaded from the store, copied from the config's file, or taken from
    /// the first collected rows; `None` while there is too little traffic.
    async fn reference(&self) -> Result<Option<Arc<Reference>>> {
        if let Some(r) = self.reference.read().await.clone() {
            return Ok(Some(r));
        }
        let stored: Option<Profile> = match self.store.object_store().get(&self.profile_path()).await {
            Ok(r) => Some(serde_json::from_slice(&r.bytes().await?)?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let configured = match &self.config.reference {
            Some(path) => {
                let full = self.base.join(path);
                let data = std::fs::read(&full)
                    .map_err(|e| Error::Reference(format!("cannot read {}: {e}", full.display())))?;
                let format = full.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
                Some((full, Bytes::from(data), format))
            }
            None => None,
        };
        // An uploaded reference wins; a configured file wins over traffic and replaces its own
        // older copy when the file changed.
        if let Some(profile) = stored {
            let replaced_by_config = profile.source.starts_with("config:")
                && configured.as_ref().is_some_and(|(_, data, _)| reference::fingerprint(data) != profile.version);
            if profile.source == "upload"
                || profile.source == "traffic" && configured.is_none()
                || !replaced_by_config && profile.source.starts_with("config:")
            {
                let data = self.store.object_store().get(&self.reference_path(&profile.format)).await?.bytes().await?;
                let reference =
                    Arc::new(Reference::new(reference::decode(data, &profile.format)?, &self.schema, profile)?);
                *self.reference.write().await = Some(reference.clone());
                return Ok(Some(reference));
            }
        }
        if let Some((path, data, format)) = configured {
            let profile = Profile {
                source: format!("config:{}", path.display()),
                version: reference::fingerprint(&data),
                format,
                prediction_column: self.config.reference_prediction_column.clone(),
                target_column: self.config.reference_target_column.clone(),
                rows: 0,
                performance: BTreeMap::new(),
            };
            return Ok(Some(self.save_reference(data, profile).await?));
        }
        self.reference_from_traffic().await
    }

    async fn reference_from_traffic(&self) -> Result<Option<Arc<Reference>>> {
        let ctx = sql::session(&self.store, &self.name, &self.schema, self.memory_limit).await?;
        let batches = if let Some(span) = self.config.reference_span {
            // The first `span` of event time, once traffic reaches past its end.
            let bounds =
                ctx.sql("SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM predictions").await?.collect().await?;
            let bound = |name: &str| {
                bounds.first().and_then(|b| b.column_by_name(name)).and_then(|c| {
                    let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).ok()?;
                    let c = c.as_any().downcast_ref::<arrow::array::Int64Array>()?;
                    (c.len() == 1 && !arrow::array::Array::is_null(c, 0)).then(|| c.value(0))
                })
            };
            let (Some(lo), Some(hi)) = (bound("lo"), bound("hi")) else { return Ok(None) };
            let end = lo + span.as_micros() as i64;
            if hi < end {
                tracing::debug!(model = %self.name, "waiting for traffic to cover reference_span");
                return Ok(None);
            }
            let query = format!(
                "SELECT * FROM predictions_labeled WHERE timestamp < '{}' ORDER BY timestamp, prediction_id",
                rfc3339(end)
            );
            ctx.sql(&query).await?.collect().await?
        } else {
            let n = self.config.reference_rows;
            let batches = ctx
                .sql(&format!("SELECT * FROM predictions_labeled ORDER BY timestamp, prediction_id LIMIT {n}"))
                .await?
                .collect()
                .await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            if rows < n {
                tracing::debug!(model = %self.name, rows, needed = n, "waiting for traffic to form the reference");
                return Ok(None);
            }
            batches
        };
        if batches.iter().map(|b| b.num_rows()).sum::<usize>() == 0 {
            return Ok(None);
        }
        let mut buf = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buf, batches[0].schema(), None)?;
        for b in &batches {
            writer.write(b)?;
        }
        writer.close()?;
        let data = Bytes::from(buf);
        let profile = Profile {
            source: "traffic".into(),
            version: reference::fingerprint(&data),
            format: "parquet".into(),
            prediction_column: "prediction".into(),
            target_column: "label".into(),
            rows: 0,
            performance: BTreeMap::new(),
        };
        Ok(Some(self.save_reference(data, profile).await?))
    }

    /// The live data files of a table (compacted sources left out), with their sizes.
    async fn list(&self, table: &str) -> Result<BTreeMap<String, u64>> {
        let prefix = Path::from(format!("{}/{table}", self.name));
        let metas = compact::live_files(self.store.object_store().as_ref(), &prefix).await?;
        let mut files: BTreeMap<String, u64> = metas.into_iter().map(|m| (m.location.to_string(), m.size)).collect();
        if table == "predictions" {
            self.leave_out_of_range(&mut files).await;
        }
        Ok(files)
    }

    /// Leaves out the prediction files whose hour lies outside the event times ingest accepts
    /// (written by an older version or another writer): no window can hold them, and the query
    /// engine cannot compare times that far out. Their rows are counted once, from the footer.
    async fn leave_out_of_range(&self, files: &mut BTreeMap<String, u64>) {
        // A date no calendar parses (`date=-29719-04-05`) lies outside too.
        let outside: Vec<String> = files
            .keys()
            .filter(|p| p.contains("date=") && hour_of(p).is_none_or(|h| !EVENT_TIMES_US.contains(&h)))
            .cloned()
            .collect();
        for path in outside {
            files.remove(&path);
            if !self.out_of_range.lock().expect("not poisoned").insert(path.clone()) {
                continue;
            }
            let rows = self.store.parquet_rows(&Path::from(path.as_str())).await.unwrap_or(0);
            tracing::warn!(model = %self.name, file = %path, rows, "left out of the analysis: its event times lie outside 1970-01-01 to 2200-01-01");
            self.metrics.skipped_rows.with_label_values(&[&self.name, "event_time_out_of_range"]).inc_by(rows);
        }
    }

    /// `files` as `seen` before, with the files that compaction made out of seen files given their
    /// sources' place: the same rows in new files change no window. Such a file is recognised by
    /// its manifest, whose sources were all seen.
    async fn known_after_compaction(
        &self,
        files: &BTreeMap<String, u64>,
        seen: &BTreeMap<String, u64>,
    ) -> Result<BTreeMap<String, u64>> {
        let mut known = seen.clone();
        for (path, size) in files.iter().filter(|(p, _)| !seen.contains_key(*p)) {
            let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
            let Some(id) = file.strip_prefix(compact::OUTPUT_PREFIX).and_then(|f| f.strip_suffix(".parquet")) else {
                continue;
            };
            let manifest = Path::from(format!("{dir}/{}{id}.json", compact::MANIFEST_PREFIX));
            let manifest: compact::Manifest = match self.store.object_store().get(&manifest).await {
                Ok(r) => match serde_json::from_slice(&r.bytes().await?) {
                    Ok(m) => m,
                    Err(_) => continue,
                },
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if manifest.sources.iter().all(|s| seen.contains_key(&format!("{dir}/{s}"))) {
                known.insert(path.clone(), *size);
            }
        }
        Ok(known)
    }

    /// The windows (start, µs) that overlap an hour partition.
    fn windows_of_hour(w: i64, hour: i64) -> impl Iterator<Item = i64> {
        let first = hour.div_euclid(w) * w;
        (0..).map(move |i| first + i * w).take_while(move |s| *s < hour + HOUR_US)
    }

    /// The columns a window's analysis reads, with whether each is numeric.
    fn wanted(&self) -> Vec<(String, bool)> {
        let mut wanted = reference::analysed_columns(&self.schema);
        wanted.push(("timestamp".into(), true));
        wanted.push(("label_timestamp".into(), true));
        wanted
    }

    /// `SELECT` of the `columns` (and `extra`) of `table` from the rows `filter` (the rest of the
    /// query) picks.
    fn select_columns(table: &str, columns: &[(String, bool)], extra: &str, filter: &str) -> String {
        let list: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        format!("SELECT {}{extra} FROM {table} {filter}", list.join(", "))
    }

    /// `SELECT` of the analysed columns (and `extra`) from the rows `filter` (the rest of the query) picks.
    fn select(&self, extra: &str, filter: &str) -> String {
        Self::select_columns("predictions_labeled", &self.wanted(), extra, filter)
    }

    /// The `columns` of the rows of `table` that `filter` (the rest of a SELECT) picks.
    async fn frame_of(
        &self,
        ctx: &SessionContext,
        table: &str,
        columns: &[(String, bool)],
        filter: &str,
    ) -> Result<Frame> {
        // Batch by batch: the scan's batches are not all held beside the frame.
        let mut stream = ctx.sql(&Self::select_columns(table, columns, "", filter)).await?.execute_stream().await?;
        let mut frame = FrameBuilder::new(columns);
        while let Some(batch) = stream.try_next().await? {
            frame.push(&batch)?;
        }
        frame.finish()
    }

    /// The analysed columns of the rows `filter` (the rest of a SELECT) picks.
    async fn frame(&self, ctx: &SessionContext, filter: &str) -> Result<Frame> {
        self.frame_of(ctx, "predictions_labeled", &self.wanted(), filter).await
    }

    /// The rows of `table` in the window `start..end` (µs), with the `columns`.
    async fn window_frame(
        &self,
        ctx: &SessionContext,
        table: &str,
        columns: &[(String, bool)],
        start: i64,
        end: i64,
    ) -> Result<Frame> {
        let filter = format!(
            "WHERE timestamp >= '{}' AND timestamp < '{}' AND date >= '{}' AND date <= '{}'",
            rfc3339(start),
            rfc3339(end),
            date(start),
            date(end - 1)
        );
        self.frame_of(ctx, table, columns, &filter).await
    }

    /// The basis of file profiles for `reference` and windows `window_us` long.
    fn basis(&self, reference: &Reference, window_us: i64) -> Arc<Basis> {
        let mut basis = self.basis.lock().expect("not poisoned");
        match &*basis {
            Some(b) if b.version == reference.profile.version && b.window_us == window_us => b.clone(),
            _ => {
                // Text and embedding tests need the rows: only those columns are read raw.
                let raw: BTreeSet<&str> = (self.schema.features.iter())
                    .filter(|f| match f.kind {
                        FeatureKind::Text => true,
                        FeatureKind::Embedding => !super::profile::vectors_mergeable(&f.name, &self.config),
                        _ => false,
                    })
                    .map(|f| f.name.as_str())
                    .collect();
                let mut columns = reference::analysed_columns(&self.schema);
                columns
                    .retain(|(name, _)| name != "label" && !name.starts_with("score_") && !raw.contains(name.as_str()));
                let b = Arc::new(Basis::new(reference, window_us, &columns));
                *basis = Some(b.clone());
                b
            }
        }
    }

    /// The profile of the stored file at `path` (`size` bytes): the one stored beside it when it
    /// was cut against this basis, else computed from the file and stored.
    async fn file_profile(&self, path: &str, size: u64, basis: &Arc<Basis>) -> Result<FileProfile> {
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
        let profile_path = Path::from(format!("{dir}/{}", compact::profile_name(file)));
        match self.store.object_store().get(&profile_path).await {
            Ok(r) => {
                let stored: Option<FileProfile> = serde_json::from_slice(&r.bytes().await?).ok();
                if let Some(p) = stored
                    .filter(|p| p.reference == basis.version && p.window_us == basis.window_us && p.file_size == size)
                {
                    return Ok(p);
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let data = self.store.object_store().get(&Path::from(path)).await?.bytes().await?;
        let basis = basis.clone();
        let profile = tokio::task::spawn_blocking(move || -> Result<FileProfile> {
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)?;
            let names: Vec<&str> =
                basis.columns.iter().map(|c| c.name.as_str()).chain(std::iter::once("timestamp")).collect();
            let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), names);
            let batches: Vec<RecordBatch> =
                builder.with_projection(mask).build()?.collect::<std::result::Result<_, _>>()?;
            let mut wanted: Vec<(String, bool)> = basis.columns.iter().map(|c| (c.name.clone(), c.numeric)).collect();
            wanted.push(("timestamp".into(), true));
            Ok(basis.profile(&Frame::from_batches(&batches, &wanted)?, size))
        })
        .await
        .map_err(|e| Error::Reference(format!("profiling task failed: {e}")))??;
        self.store.put(&profile_path, serde_json::to_vec(&profile)?.into()).await?;
        Ok(profile)
    }

    /// One event-time window from the profiles of its files: the columns the profiles settle are
    /// taken from them, and only the rest (and what performance reads) from the window's rows.
    async fn profiled_window(
        &self,
        ctx: &SessionContext,
        reference: &Arc<Reference>,
        files: &[(&str, u64)],
        start: i64,
        end: i64,
    ) -> Result<Option<WindowResult>> {
        let basis = self.basis(reference, end - start);
        let mut merged: Option<Segment> = None;
        for (path, size) in files {
            let profile = self.file_profile(path, *size, &basis).await?;
            for segment in profile.segments.iter().filter(|s| s.start == start) {
                match &mut merged {
                    Some(m) => m.merge(segment),
                    None => merged = Some(segment.clone()),
                }
            }
        }
        let Some(merged) = merged.filter(|m| m.rows > 0) else { return Ok(None) };
        let columns = window::tested_columns(&self.schema);
        let settled = super::profile::settle(&merged, &basis, reference, &columns, &self.config);
        // Features the profiles settled are not read; the prediction is, for performance, and
        // the labels come from the label join state of the window's hours.
        let mut read = self.wanted();
        let label_numeric = read.iter().any(|(name, numeric)| name == "label" && *numeric);
        let joint = super::multivariate::rows_needed(&self.schema, &self.config);
        read.retain(|(name, _)| {
            (!settled.precomputed.quality.contains_key(name) || joint.contains(&name.as_str()))
                && name != "label"
                && name != "label_timestamp"
        });
        read.push(("prediction_id".into(), false));
        let mut frame = self.window_frame(ctx, "predictions", &read, start, end).await?;
        if frame.rows == 0 {
            return Ok(None);
        }
        let labels_schema = self.schema.labels_schema();
        labels::attach(&self.store, &self.name, &labels_schema, &mut frame, (start, end), label_numeric).await?;
        Ok(Some(self.analyse_with(reference, frame, settled.precomputed).await?))
    }

    /// Brings the label join state up to date with new label files and new prediction hours;
    /// returns the prediction hours that new labels label. The state is built anew from every
    /// label file when it is not known to be complete (first run, profiles turned on); the
    /// files seen before label no hour anew, as the windows analysed so far were joined with them.
    ///
    /// Label files are folded in groups of at most `LABEL_FOLD_BYTES`, which bounds memory.
    async fn fold_labels(
        &self,
        ctx: &SessionContext,
        state: &mut State,
        predictions: &BTreeMap<String, u64>,
        labels: &BTreeMap<String, u64>,
        new_hours: BTreeSet<i64>,
    ) -> Result<BTreeSet<i64>> {
        const LABEL_FOLD_BYTES: u64 = 64 << 20;
        let lookback = self.config.label_lookback.as_micros() as i64;
        let rebuild = !state.label_join;
        if rebuild {
            labels::clear(&self.store, &self.name).await?;
        }
        // Files the windows analysed so far were joined with (all of them but new ones, when
        // the state is built anew) label nothing new; the others' hours are analysed again.
        let (known, new): (Vec<(&String, &u64)>, Vec<(&String, &u64)>) = labels
            .iter()
            .filter(|(path, size)| rebuild || state.label_files.get(*path) != Some(size))
            .partition(|(path, size)| rebuild && state.label_files.get(*path) == Some(size));
        let mut groups: Vec<(Vec<String>, bool)> = by_size(known, LABEL_FOLD_BYTES)
            .into_iter()
            .map(|g| (g, false))
            .chain(by_size(new, LABEL_FOLD_BYTES).into_iter().map(|g| (g, true)))
            .collect();
        if groups.is_empty() && !new_hours.is_empty() {
            // No new labels: the pending ones are looked up in the new hours.
            groups.push((Vec::new(), true));
        }
        let mut labeled = BTreeSet::new();
        let mut new_hours = Some(new_hours);
        let count = groups.len();
        for (i, (label_files, fresh)) in groups.into_iter().enumerate() {
            if count > 1 {
                tracing::info!(model = %self.name, group = i + 1, of = count, "folding label files into the label join state");
            }
            let fold = labels::Fold {
                store: &self.store,
                model: &self.name,
                ctx,
                schema: self.schema.labels_schema(),
                label_files,
                lookback,
                // The pending labels meet the new hours once (their windows are analysed anyway).
                new_hours: new_hours.take().unwrap_or_default(),
                pending_from: chrono::Utc::now().timestamp_micros() - lookback,
            };
            let hours = labels::fold(&fold).await?;
            if fresh {
                labeled.extend(hours);
            }
        }
        if let Some(oldest) = predictions.keys().filter_map(|p| hour_of(p)).min() {
            labels::prune(&self.store, &self.name, oldest).await?;
        }
        state.label_join = true;
        Ok(labeled)
    }

    /// One event-time window from its rows.
    async fn raw_window(
        &self,
        ctx: &SessionContext,
        reference: &Arc<Reference>,
        start: i64,
        end: i64,
    ) -> Result<Option<WindowResult>> {
        let frame = self.window_frame(ctx, "predictions_labeled", &self.wanted(), start, end).await?;
        if frame.rows == 0 {
            return Ok(None);
        }
        Ok(Some(self.analyse(reference, frame).await?))
    }

    async fn analyse(&self, reference: &Arc<Reference>, frame: Frame) -> Result<WindowResult> {
        self.analyse_with(reference, frame, Precomputed::default()).await
    }

    async fn analyse_with(&self, reference: &Arc<Reference>, frame: Frame, done: Precomputed) -> Result<WindowResult> {
        let (reference, schema, config) = (reference.clone(), self.schema.clone(), self.config.clone());
        tokio::task::spawn_blocking(move || window::analyse_with(&frame, &reference, &schema, &config, &done))
            .await
            .map_err(|e| Error::Reference(format!("analysis task failed: {e}")))
    }

    /// Brings the row-count windows (`window_rows = n`) up to date; returns the number and first
    /// event time of each window analysed.
    ///
    /// Rows are numbered in (timestamp, prediction_id) order, so a late row shifts the boundaries
    /// of every block after it. The rows are read again, in order, from the first block that may
    /// hold a changed row: the first one ending in or after the earliest hour with a new or grown
    /// file, the first one starting within the label lookback when labels arrived, else the
    /// incomplete last block. Blocks before it are kept as they are. A re-read block whose
    /// rows are the ones analysed before (same count, first and last row) is not analysed again
    /// unless labels arrived and it starts within the lookback. The rows stream through DataFusion's
    /// sort; one block at a time is held for analysis.
    async fn run_row_windows(
        &self,
        ctx: &SessionContext,
        reference: &Arc<Reference>,
        state: &mut State,
        n: usize,
        changed_from: Option<i64>,
        horizon: Option<i64>,
    ) -> Result<Vec<(u64, i64)>> {
        let blocks = &state.row_windows;
        let mut start = blocks.len() - usize::from(blocks.last().is_some_and(|b| b.rows < n));
        let mut changed = false;
        if state.window_rows != Some(n) {
            // The first run, or `window_rows` changed: every block is cut anew.
            changed = true;
            start = 0;
        }
        if let Some(from) = changed_from {
            changed = true;
            start = start.min(blocks.iter().position(|b| b.last >= from).unwrap_or(blocks.len()));
        }
        if let Some(horizon) = horizon {
            changed = true;
            start = start.min(blocks.iter().position(|b| b.first >= horizon).unwrap_or(blocks.len()));
        }
        if !changed {
            return Ok(Vec::new());
        }
        if state.window_rows != Some(n) {
            state.window_rows = Some(n);
            state.row_windows.clear();
        }
        let order = "ORDER BY timestamp, prediction_id";
        let filter = match start.checked_sub(1).map(|i| &state.row_windows[i]) {
            Some(b) => format!(
                "WHERE (timestamp > '{t}' OR (timestamp = '{t}' AND prediction_id > '{id}')) AND date >= '{d}' {order}",
                t = rfc3339(b.last),
                id = b.last_id.replace('\'', "''"),
                d = date(b.last),
            ),
            None => order.into(),
        };
        let mut stream = ctx.sql(&self.select(", \"prediction_id\"", &filter)).await?.execute_stream().await?;
        let wanted = self.wanted();
        let (mut pending, mut pending_rows) = (VecDeque::new(), 0);
        let mut index = start;
        let mut done = Vec::new();
        let mut newest = None;
        loop {
            let next = stream.try_next().await?;
            let end = next.is_none();
            if let Some(b) = next.filter(|b| b.num_rows() > 0) {
                pending_rows += b.num_rows();
                pending.push_back(b);
            }
            while pending_rows >= n || end && pending_rows > 0 {
                let rows = pending_rows.min(n);
                let block = take_rows(&mut pending, rows);
                pending_rows -= rows;
                let key = row_window_key(&block)?;
                let relabeled = horizon.is_some_and(|h| key.first >= h);
                if relabeled || state.row_windows.get(index) != Some(&key) {
                    let frame = Frame::from_batches(&block, &wanted)?;
                    drop(block);
                    let result = self.analyse(reference, frame).await?;
                    let window = results::Window::Rows { index: index as u64, start: key.first, end: key.last + 1 };
                    results::write(&self.store, &self.name, &window, chrono::Utc::now().timestamp_micros(), &result)
                        .await?;
                    done.push((index as u64, key.first));
                    newest = Some((index, key.first, result));
                    match state.row_windows.get_mut(index) {
                        Some(b) => *b = key,
                        None => state.row_windows.push(key),
                    }
                }
                index += 1;
            }
            if end {
                break;
            }
        }
        // Fewer rows than before (files removed from the store): the blocks past the end go.
        for gone in index..state.row_windows.len() {
            let window = results::Window::Rows { index: gone as u64, start: 0, end: 0 };
            results::delete(&self.store, &self.name, &window).await?;
        }
        state.row_windows.truncate(index);
        if let Some((i, first, result)) = newest.filter(|(i, _, _)| i + 1 == index) {
            debug_assert_eq!(i + 1, state.row_windows.len());
            state.latest = Some((first, result));
        }
        Ok(done)
    }

    /// Analyses every window whose data changed since the last run. A failure is counted
    /// (`anchorwatch_analysis_failures_total`) and kept, with the failures before it, until a
    /// run succeeds ([`ModelMonitor::failing`]).
    pub async fn run_once(&self) -> Result<RunSummary> {
        let result = self.analyse_changes().await;
        let mut failing = self.failing.lock().expect("not poisoned");
        match &result {
            Ok(_) => *failing = None,
            Err(e) => {
                self.metrics.failures.with_label_values(&[&self.name]).inc();
                let now = chrono::Utc::now().timestamp_micros();
                let before = failing.take();
                *failing = Some(Failing {
                    since: before.as_ref().map_or(now, |f| f.since),
                    runs: before.map_or(0, |f| f.runs) + 1,
                    error: e.to_string(),
                });
            }
        }
        result
    }

    /// The analysis runs that failed since the last success; `None` while runs succeed.
    pub fn failing(&self) -> Option<Failing> {
        self.failing.lock().expect("not poisoned").clone()
    }

    async fn analyse_changes(&self) -> Result<RunSummary> {
        let mut state = self.state.lock().await;
        let started = Instant::now();
        let Some(reference) = self.reference().await? else {
            return Ok(RunSummary { waiting_for_reference: true, ..RunSummary::default() });
        };
        if state.reference_version != reference.profile.version {
            if !state.windows.is_empty() {
                tracing::info!(model = %self.name, "the reference changed: every window is recomputed");
            }
            // The label join state does not depend on the reference: it is kept, with the label
            // files it holds.
            *state = State {
                reference_version: reference.profile.version.clone(),
                label_files: std::mem::take(&mut state.label_files),
                label_join: state.label_join,
                ..State::default()
            };
        }
        let predictions = self.list("predictions").await?;
        let labels = self.list("labels").await?;
        // Compacted files hold rows already analysed: they count as seen.
        state.prediction_files = self.known_after_compaction(&predictions, &state.prediction_files).await?;
        state.label_files = self.known_after_compaction(&labels, &state.label_files).await?;
        let labels_changed = labels.iter().any(|(p, s)| state.label_files.get(p) != Some(s));
        // New labels recompute the windows that start within the lookback.
        let horizon = labels_changed
            .then(|| chrono::Utc::now().timestamp_micros() - self.config.label_lookback.as_micros() as i64);
        let ctx = sql::session(&self.store, &self.name, &self.schema, self.memory_limit).await?;
        let mut done = Vec::new();
        let mut row_windows = Vec::new();
        match self.config.windows() {
            Windows::Time(window_us) => {
                let mut todo = BTreeSet::new();
                let mut new_hours = BTreeSet::new();
                for (path, size) in &predictions {
                    if state.prediction_files.get(path) != Some(size) {
                        if let Some(hour) = hour_of(path) {
                            todo.extend(Self::windows_of_hour(window_us, hour));
                            new_hours.insert(hour);
                        }
                    }
                }
                if self.config.profiles {
                    // New labels recompute the windows of the predictions they label.
                    for hour in self.fold_labels(&ctx, &mut state, &predictions, &labels, new_hours).await? {
                        todo.extend(Self::windows_of_hour(window_us, hour));
                    }
                } else if let Some(horizon) = horizon {
                    todo.extend(state.windows.keys().copied().filter(|w| *w >= horizon));
                }
                for start in todo {
                    let end = start + window_us;
                    let window_started = Instant::now();
                    let result = if self.config.profiles {
                        // The files of the hours the window overlaps.
                        let files: Vec<(&str, u64)> = predictions
                            .iter()
                            .filter(|(path, _)| hour_of(path).is_none_or(|h| h < end && h + HOUR_US > start))
                            .map(|(path, size)| (path.as_str(), *size))
                            .collect();
                        self.profiled_window(&ctx, &reference, &files, start, end).await?
                    } else {
                        self.raw_window(&ctx, &reference, start, end).await?
                    };
                    let Some(result) = result else { continue };
                    tracing::debug!(model = %self.name, start, elapsed = ?window_started.elapsed(), profiles = self.config.profiles, "window analysed");
                    let window = results::Window::Tumbling { start, end };
                    results::write(&self.store, &self.name, &window, chrono::Utc::now().timestamp_micros(), &result)
                        .await?;
                    state.windows.insert(start, result.rows);
                    if state.latest.as_ref().is_none_or(|(s, _)| *s <= start) {
                        state.latest = Some((start, result));
                    }
                    done.push(start);
                }
            }
            Windows::Rows(n) => {
                // The earliest event time whose rows may have changed: the hour of the first
                // new or grown file (a file without an hour in its path changes everything).
                let changed_from = predictions
                    .iter()
                    .filter(|(path, size)| state.prediction_files.get(*path) != Some(size))
                    .map(|(path, _)| hour_of(path).unwrap_or(i64::MIN))
                    .min();
                for (index, first) in
                    self.run_row_windows(&ctx, &reference, &mut state, n, changed_from, horizon).await?
                {
                    row_windows.push(index);
                    done.push(first);
                }
            }
        }
        if !self.config.profiles || !matches!(self.config.windows(), Windows::Time(_)) {
            // Not kept up to date from here on: built anew if profiles come back.
            state.label_join = false;
        }
        let files_changed = labels_changed || predictions.iter().any(|(p, s)| state.prediction_files.get(p) != Some(s));
        let mut rolling = false;
        if let (Some(n), true) = (self.config.rolling_rows, files_changed) {
            let frame = self.frame(&ctx, &format!("ORDER BY timestamp DESC, prediction_id DESC LIMIT {n}")).await?;
            let times = match frame.get("timestamp") {
                Some(super::data::Column::Numbers(t)) => t.clone(),
                _ => Vec::new(),
            };
            if let (Some(first), Some(last)) =
                (times.iter().copied().reduce(f64::min), times.iter().copied().reduce(f64::max))
            {
                let result = self.analyse(&reference, frame).await?;
                let now = chrono::Utc::now().timestamp_micros();
                let window = results::Window::Rolling { start: first as i64, end: last as i64 + 1 };
                results::write(&self.store, &self.name, &window, now, &result).await?;
                rolling = true;
            }
        }
        state.prediction_files = predictions;
        state.label_files = labels;
        let path = Path::from(format!("{}/results/state.json", self.name));
        self.store.put(&path, serde_json::to_vec(&*state)?.into()).await?;
        if let Some((_, latest)) = &state.latest {
            self.export(latest);
        }
        let now = chrono::Utc::now().timestamp_micros();
        let latest = state.latest.as_ref().map(|(s, r)| (*s, Arc::new(r.clone())));
        self.published.send_replace(Published { at: now, latest });
        self.metrics.duration.observe(started.elapsed().as_secs_f64());
        self.metrics.last_run.with_label_values(&[&self.name]).set(chrono::Utc::now().timestamp_micros() as f64 / 1e6);
        if !done.is_empty() {
            tracing::info!(model = %self.name, windows = done.len(), elapsed = ?started.elapsed(), "analysed windows");
        }
        Ok(RunSummary { waiting_for_reference: false, windows: done, row_windows, rolling })
    }

    /// The `window` value of this model's tumbling windows in the results tables: `tumbling`
    /// (by event time) or `rows` (by row count, `window_rows`).
    pub fn tumbling_kind(&self) -> &'static str {
        match self.config.windows() {
            Windows::Time(_) => "tumbling",
            Windows::Rows(_) => "rows",
        }
    }

    /// Receives what every run publishes (the value before the first run is the saved state's).
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.published.subscribe()
    }

    /// Sets the gauges from a window's result.
    fn export(&self, r: &WindowResult) {
        let m = &self.metrics;
        let name = self.name.as_str();
        let exported: BTreeSet<&str> = self
            .schema
            .features
            .iter()
            .take(self.config.max_exported_features)
            .map(|f| f.name.as_str())
            .chain(["prediction", "label"])
            .collect();
        m.drift_score.reset();
        m.drifted.reset();
        // A descriptor row (`review.text_length`) goes with its text feature.
        fn feature_of(d: &window::DriftRow) -> &str {
            match d.role {
                window::Role::Descriptor => d.column.rsplit_once('.').map_or(d.column.as_str(), |(feature, _)| feature),
                _ => d.column.as_str(),
            }
        }
        for d in r.drift.iter().filter(|d| exported.contains(feature_of(d)) && d.error.is_none()) {
            let labels = [name, d.column.as_str(), d.stattest.as_str()];
            m.drift_score.with_label_values(&labels).set(d.score);
            m.drifted.with_label_values(&labels).set(if d.drifted { 1.0 } else { 0.0 });
        }
        m.multivariate.reset();
        m.multivariate_drifted.reset();
        for d in r.drift.iter().filter(|d| d.role == window::Role::Multivariate && d.error.is_none()) {
            m.multivariate.with_label_values(&[name, d.stattest.as_str()]).set(d.score);
            m.multivariate_drifted.with_label_values(&[name, d.stattest.as_str()]).set(if d.drifted {
                1.0
            } else {
                0.0
            });
        }
        m.drift_share.with_label_values(&[name]).set(r.drift_share);
        m.rows.with_label_values(&[name]).set(r.rows as f64);
        for q in r.quality.iter().filter(|q| exported.contains(q.feature.as_str())) {
            m.quality.with_label_values(&[name, q.feature.as_str(), q.check.as_str()]).set(q.value);
        }
        for p in &r.performance {
            if let Some(b) = p.breached {
                m.breached.with_label_values(&[name, p.metric.as_str(), p.kind.as_str()]).set(if b {
                    1.0
                } else {
                    0.0
                });
            }
            if p.metric == "label_coverage" {
                m.coverage.with_label_values(&[name]).set(p.value);
                continue;
            }
            m.performance.with_label_values(&[name, p.metric.as_str(), p.kind.as_str()]).set(p.value);
            if let (Some(reference), "realized") = (p.reference, p.kind.as_str()) {
                if reference != 0.0 {
                    m.decay.with_label_values(&[name, p.metric.as_str()]).set(p.value / reference);
                }
            }
        }
    }

    /// Runs [`ModelMonitor::run_once`] every `interval` until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::error!(model = %self.name, error = %e, "analysis failed; retrying at the next interval");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = stop.changed() => break,
            }
        }
    }
}

/// Every model's monitor, running in the background.
pub struct Monitor {
    models: BTreeMap<String, Arc<ModelMonitor>>,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Monitor {
    /// Starts the loops of the given monitors.
    pub fn start(monitors: Vec<Arc<ModelMonitor>>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let tasks = monitors
            .iter()
            .filter(|m| m.config.enabled)
            .map(|m| tokio::spawn(m.clone().run(stopped.clone())))
            .collect();
        Self {
            models: monitors.into_iter().map(|m| (m.name.clone(), m)).collect(),
            stop,
            tasks: std::sync::Mutex::new(tasks),
        }
    }

    /// A model's monitor.
    pub fn model(&self, name: &str) -> Option<&Arc<ModelMonitor>> {
        self.models.get(name)
    }

    /// Every model's monitor, by name.
    pub fn models(&self) -> impl Iterator<Item = &Arc<ModelMonitor>> {
        self.models.values()
    }

    /// Stops the loops, letting a run in progress finish.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("not poisoned"));
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_files_are_grouped_by_size_a_large_one_alone() {
        let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
        let sizes = [30, 30, 50, 200, 10];
        let files: Vec<(&String, &u64)> = names.iter().zip(sizes.iter()).collect();
        let groups = by_size(files, 100);
        assert_eq!(groups, [vec!["f0", "f1"], vec!["f2"], vec!["f3"], vec!["f4"]]);
        assert!(by_size(Vec::new(), 100).is_empty());
    }
}

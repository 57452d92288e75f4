//! Compaction and retention of a model's tables (docs/store.md, "Compaction and retention").
//!
//! Collectors write many small Parquet files per partition, without coordination and without an
//! atomic rename (object storage has none). Compaction merges the small files of one partition
//! (`predictions`: date and hour; `labels`: date) into one larger file, in steps that each leave
//! the store readable:
//!
//! 1. pick the partition's live data files that are older than `min_age`;
//! 2. put a manifest `_compaction-<id>.json` (`{"output", "sources", "created"}`) in the partition;
//! 3. put the output `compact-<id>.parquet` (one atomic put);
//! 4. in a later pass, once the manifest is older than `grace`, delete the sources (and their
//!    `_profile-<stem>.json`); the manifest stays until retention removes the partition, so a
//!    source that a collector re-puts when it replays its write-ahead log stays excluded;
//! 5. a manifest without its output, older than `grace`, is what a crash between 2 and 3 left:
//!    it is deleted.
//!
//! Readers apply the rule of [`live_files`] (or see the store through [`LiveStore`]): list the
//! files, then, in a second listing, the manifests. A manifest is effective when its output was
//! listed, or when its output is a source of another effective manifest (compacting earlier
//! outputs again). Sources of effective manifests are excluded. Because a manifest is put before
//! its output and outlives its sources, a reader never counts a row twice.
//!
//! Only one compactor may run per store: two would merge the same sources into two outputs. This
//! is not locked; `anchorwatch serve` compacts only the models it analyses, and the docs say to run
//! one analysing process per model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::config::units;
use crate::error::{Error, Result};
use crate::store::Store;

/// Name prefix of compaction manifests (`_compaction-<id>.json`). The leading `_` makes Spark,
/// Trino and DuckDB globs skip them.
pub const MANIFEST_PREFIX: &str = "_compaction-";
/// Name prefix of compacted files (`compact-<id>.parquet`).
pub const OUTPUT_PREFIX: &str = "compact-";
/// Name prefix of the analyzer's per-file profiles (`_profile-<stem>.json`).
pub const PROFILE_PREFIX: &str = "_profile-";

/// How many manifests a process keeps parsed. Manifests never change once put and their names are
/// unique (UUIDv7), so a parsed manifest stays valid for as long as its name exists.
const MANIFEST_CACHE: usize = 100_000;
/// Manifests read at once.
const READ_CONCURRENCY: usize = 16;

/// `[store.compaction]`: merging small files (docs/config.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Whether `anchorwatch serve` compacts in the background, for the models it analyses.
    /// Default `true`. `anchorwatch compact` runs a pass whatever this says.
    pub enabled: bool,
    /// Time between two background passes. Default `"10m"`.
    #[serde(with = "units::duration")]
    pub interval: Duration,
    /// A partition is compacted once it has at least this many live files older than `min_age`.
    /// Default `8`.
    pub min_files: usize,
    /// Files younger than this are left alone (a partition still being written). Default `"5m"`.
    #[serde(with = "units::duration")]
    pub min_age: Duration,
    /// How long compacted sources stay after their output appeared, for readers that listed
    /// them before. Default `"10m"`.
    #[serde(with = "units::duration")]
    pub grace: Duration,
    /// Sources merged into one output, at most, in bytes; a file this large is left as it is.
    /// Bounds the memory of a pass. Default `"256MiB"`.
    #[serde(with = "units::bytes")]
    pub max_file_bytes: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(600),
            min_files: 8,
            min_age: Duration::from_secs(300),
            grace: Duration::from_secs(600),
            max_file_bytes: 256 << 20,
        }
    }
}

impl CompactionConfig {
    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("store.compaction.interval: must be more than 0".into());
        }
        if self.min_files < 2 {
            return Err(format!("store.compaction.min_files: must be at least 2, got {}", self.min_files));
        }
        if self.max_file_bytes < 1 << 20 {
            return Err(format!("store.compaction.max_file_bytes: must be at least 1MiB, got {}", self.max_file_bytes));
        }
        Ok(())
    }
}

/// `[store.retention]`: how long each table is kept (docs/config.md). Unset keeps forever.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Prediction partitions (one hour each) whose end is older than this are deleted. Example: `"90d"`.
    #[serde(with = "units::opt_duration", skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Duration>,
    /// Label partitions (one day each) whose end is older than this are deleted. Example: `"180d"`.
    #[serde(with = "units::opt_duration", skip_serializing_if = "Option::is_none")]
    pub labels: Option<Duration>,
    /// Results of tumbling windows that start earlier than this ago are deleted. Example: `"365d"`.
    #[serde(with = "units::opt_duration", skip_serializing_if = "Option::is_none")]
    pub results: Option<Duration>,
}

impl RetentionConfig {
    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, age) in [("predictions", self.predictions), ("labels", self.labels), ("results", self.results)] {
            if age.is_some_and(|a| a.is_zero()) {
                return Err(format!("store.retention.{name}: must be more than 0 (leave it out to keep forever)"));
            }
        }
        Ok(())
    }

    /// Whether anything is ever deleted.
    pub fn is_set(&self) -> bool {
        self.predictions.is_some() || self.labels.is_some() || self.results.is_some()
    }
}

/// A compaction manifest, `_compaction-<id>.json` beside its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// File name of the compacted file, `compact-<id>.parquet`, in the same folder.
    pub output: String,
    /// File names of the files merged into it, in the same folder.
    pub sources: Vec<String>,
    /// When the compaction started, RFC 3339.
    pub created: String,
}

/// Whether a file name is a data file readers scan: `*.parquet`, not starting with `_`.
pub fn is_data_file(name: &str) -> bool {
    name.ends_with(".parquet") && !name.starts_with('_')
}

/// Whether a file name is a compaction manifest.
pub fn is_manifest(name: &str) -> bool {
    name.starts_with(MANIFEST_PREFIX) && name.ends_with(".json")
}

/// The profile the analyzer keeps for data file `name`: `_profile-<stem>.json`.
pub fn profile_name(name: &str) -> String {
    format!("{PROFILE_PREFIX}{}.json", name.strip_suffix(".parquet").unwrap_or(name))
}

fn file_name(path: &Path) -> &str {
    path.filename().unwrap_or_default()
}

fn folder_of(path: &Path) -> Path {
    let parts: Vec<_> = path.parts().collect();
    Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned())
}

/// Which manifests of one folder are effective, given the data files listed there, and the file
/// names their sources exclude. Effective: the output was listed, or is itself a source of an
/// effective manifest (a chain of compactions); computed to a fixpoint.
pub fn resolve<'a>(data: &HashSet<&str>, manifests: &[&'a Manifest]) -> (Vec<bool>, HashSet<&'a str>) {
    let mut effective = vec![false; manifests.len()];
    let mut excluded: HashSet<&'a str> = HashSet::new();
    loop {
        let mut changed = false;
        for (i, m) in manifests.iter().enumerate() {
            if !effective[i] && (data.contains(m.output.as_str()) || excluded.contains(m.output.as_str())) {
                effective[i] = true;
                excluded.extend(m.sources.iter().map(String::as_str));
                changed = true;
            }
        }
        if !changed {
            return (effective, excluded);
        }
    }
}

static MANIFESTS: LazyLock<Mutex<HashMap<Path, Arc<Manifest>>>> = LazyLock::new(Default::default);

/// Reads a manifest (cached). `None` when it is gone (deleted between listing and reading) or is
/// not a manifest (logged): such a file excludes nothing.
async fn read_manifest(store: &dyn ObjectStore, path: &Path) -> object_store::Result<Option<Arc<Manifest>>> {
    if let Some(m) = MANIFESTS.lock().expect("manifest cache").get(path) {
        return Ok(Some(m.clone()));
    }
    let data = match store.get(path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<Manifest>(&data) {
        Ok(m) => {
            let m = Arc::new(m);
            let mut cache = MANIFESTS.lock().expect("manifest cache");
            if cache.len() >= MANIFEST_CACHE {
                cache.clear();
            }
            cache.insert(path.clone(), m.clone());
            Ok(Some(m))
        }
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "not a compaction manifest; ignored");
            Ok(None)
        }
    }
}

async fn read_manifests(
    store: &dyn ObjectStore,
    paths: Vec<ObjectMeta>,
) -> object_store::Result<Vec<(ObjectMeta, Arc<Manifest>)>> {
    let read: Vec<_> = stream::iter(paths)
        .map(|meta| async move {
            Ok::<_, object_store::Error>(read_manifest(store, &meta.location).await?.map(|m| (meta, m)))
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(read.into_iter().flatten().collect())
}

/// How the second listing (the manifests) is made: recursively under a prefix, or one folder.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Recursive(Option<&'a Path>),
    Folder(Option<&'a Path>),
}

/// The excluded sources among `listed` (the first listing). Lists the manifests afterwards, only
/// when some folder has a compacted output: without one, no manifest there can be effective.
async fn excluded(
    store: &dyn ObjectStore,
    scope: Scope<'_>,
    listed: &[ObjectMeta],
) -> object_store::Result<HashSet<Path>> {
    let mut data: HashMap<Path, HashSet<&str>> = HashMap::new();
    for meta in listed {
        let name = file_name(&meta.location);
        if is_data_file(name) {
            data.entry(folder_of(&meta.location)).or_default().insert(name);
        }
    }
    data.retain(|_, names| names.iter().any(|n| n.starts_with(OUTPUT_PREFIX)));
    if data.is_empty() {
        return Ok(HashSet::new());
    }
    let second: Vec<ObjectMeta> = match scope {
        Scope::Recursive(prefix) => store.list(prefix).try_collect().await?,
        Scope::Folder(prefix) => store.list_with_delimiter(prefix).await?.objects,
    };
    let manifests: Vec<ObjectMeta> = second
        .into_iter()
        .filter(|m| is_manifest(file_name(&m.location)) && data.contains_key(&folder_of(&m.location)))
        .collect();
    let mut by_folder: HashMap<Path, Vec<Arc<Manifest>>> = HashMap::new();
    for (meta, m) in read_manifests(store, manifests).await? {
        by_folder.entry(folder_of(&meta.location)).or_default().push(m);
    }
    let mut out = HashSet::new();
    for (folder, manifests) in &by_folder {
        let refs: Vec<&Manifest> = manifests.iter().map(Arc::as_ref).collect();
        let (_, names) = resolve(&data[folder], &refs);
        out.extend(names.into_iter().map(|n| folder.clone().join(n)));
    }
    Ok(out)
}

/// Live data files under `prefix` (a table folder like `credit/predictions` or a partition folder), applying compaction manifests.
///
/// Lists the data files (`*.parquet` not starting with `_`), then the manifests, and leaves out
/// the sources of effective manifests (see the module docs). Sorted by path.
pub async fn live_files(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<ObjectMeta>> {
    let listed: Vec<ObjectMeta> = store.list(Some(prefix)).try_collect().await?;
    let excluded = excluded(store, Scope::Recursive(Some(prefix)), &listed).await?;
    let mut live: Vec<ObjectMeta> = listed
        .into_iter()
        .filter(|m| is_data_file(file_name(&m.location)) && !excluded.contains(&m.location))
        .collect();
    live.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(live)
}

/// An object store that hides compacted sources from listings, so any engine that lists (as
/// DataFusion's listing tables do) reads each row once. `list` and `list_with_delimiter` apply
/// the rule of [`live_files`] to every folder they return; everything else is delegated.
#[derive(Debug)]
pub struct LiveStore {
    inner: Arc<dyn ObjectStore>,
}

impl LiveStore {
    /// Wraps a store.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

impl fmt::Display for LiveStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LiveStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LiveStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        stream::once(async move {
            let listed: Vec<ObjectMeta> = inner.list(prefix.as_ref()).try_collect().await?;
            let excluded = excluded(inner.as_ref(), Scope::Recursive(prefix.as_ref()), &listed).await?;
            let live = listed.into_iter().filter(move |m| !excluded.contains(&m.location)).map(Ok);
            Ok::<_, object_store::Error>(stream::iter(live))
        })
        .try_flatten()
        .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // The manifests that exclude a file may sort before the offset: resolve on the whole listing.
        let offset = offset.clone();
        self.list(prefix).try_filter(move |m| futures::future::ready(m.location > offset)).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        let excluded = excluded(self.inner.as_ref(), Scope::Folder(prefix), &listed.objects).await?;
        listed.objects.retain(|m| !excluded.contains(&m.location));
        Ok(listed)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// One pass of compaction and retention over a model.
#[derive(Debug, Clone)]
pub struct Pass<'a> {
    /// Compaction settings; `None` compacts nothing (retention only).
    pub compaction: Option<&'a CompactionConfig>,
    /// Retention settings.
    pub retention: &'a RetentionConfig,
    /// zstd level of compacted files (`collector.zstd_level`).
    pub zstd_level: i32,
    /// The clock: ages are measured against it.
    pub now: DateTime<Utc>,
}

/// What a pass did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// `predictions`, `labels`, `drift`, `performance` or `quality`.
    pub table: String,
    /// Partitions compacted (one new file each).
    pub partitions_compacted: usize,
    /// Files merged into the new files.
    pub files_merged: usize,
    /// Rows in the new files.
    pub rows_merged: u64,
    /// Bytes of the merged files.
    pub bytes_before: u64,
    /// Bytes of the new files.
    pub bytes_after: u64,
    /// Compacted sources deleted once their grace had passed (profiles not counted).
    pub sources_deleted: usize,
    /// Manifests left by an interrupted compaction, deleted.
    pub stale_manifests_deleted: usize,
    /// Partitions whose data retention deleted.
    pub partitions_deleted: usize,
    /// Objects retention deleted (data, profiles, manifests, results).
    pub files_deleted: usize,
}

impl TableReport {
    /// Whether the pass changed anything in the table.
    pub fn changed(&self) -> bool {
        *self != TableReport { table: self.table.clone(), ..Default::default() }
    }
}

impl fmt::Display for TableReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if RESULT_TABLES.contains(&self.table.as_str()) {
            return write!(f, "{}: retention deleted {} files", self.table, self.files_deleted);
        }
        write!(
            f,
            "{}: merged {} files ({} bytes) into {} ({} bytes, {} rows); deleted {} merged files and {} stale manifests; \
             retention deleted {} partitions ({} files)",
            self.table,
            self.files_merged,
            self.bytes_before,
            self.partitions_compacted,
            self.bytes_after,
            self.rows_merged,
            self.sources_deleted,
            self.stale_manifests_deleted,
            self.partitions_deleted,
            self.files_deleted
        )
    }
}

/// What a pass did to a model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    /// The model.
    pub model: String,
    /// One entry per table: `predictions`, `labels`, then the results tables.
    pub tables: Vec<TableReport>,
}

/// The tables of results and where their files are.
const RESULT_TABLES: [&str; 3] = ["drift", "performance", "quality"];

/// Runs one pass over `model`: per partition of `predictions` and `labels`, retention, deletion of
/// compacted sources past their grace and of stale manifests, then compaction; then retention of
/// results. Only one pass may run per store at a time (module docs).
pub async fn run(store: &Store, model: &str, pass: &Pass<'_>) -> Result<PassReport> {
    let mut report = PassReport { model: model.to_string(), tables: Vec::new() };
    for (table, keep) in [("predictions", pass.retention.predictions), ("labels", pass.retention.labels)] {
        report.tables.push(maintain_table(store, model, table, keep, pass).await?);
    }
    for table in RESULT_TABLES {
        let mut r = TableReport { table: table.to_string(), ..Default::default() };
        if let Some(keep) = pass.retention.results {
            let dir = Path::from(format!("{model}/results/{table}"));
            let listed: Vec<ObjectMeta> = store.object_store().list(Some(&dir)).try_collect().await?;
            for meta in listed {
                let start = file_name(&meta.location)
                    .strip_prefix("window-")
                    .and_then(|s| s.strip_suffix(".parquet"))
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(DateTime::<Utc>::from_timestamp_micros);
                if start.is_some_and(|s| older_than(s, pass.now, keep)) {
                    store.delete(&meta.location).await?;
                    r.files_deleted += 1;
                }
            }
        }
        report.tables.push(r);
    }
    Ok(report)
}

/// The end of a partition from its folder below the table: `date=YYYY-MM-DD/hour=HH` for
/// predictions, `date=YYYY-MM-DD` for labels. `None` for anything else, which is left alone.
fn partition_end(table: &str, rel: &[&str]) -> Option<DateTime<Utc>> {
    let date = |s: &str| NaiveDate::parse_from_str(s.strip_prefix("date=")?, "%Y-%m-%d").ok();
    match (table, rel) {
        ("predictions", [d, h]) => {
            let hour: u32 = h.strip_prefix("hour=")?.parse().ok().filter(|h| *h < 24)?;
            Some(date(d)?.and_hms_opt(hour, 0, 0)?.and_utc() + chrono::Duration::hours(1))
        }
        ("labels", [d]) => Some(date(d)?.and_hms_opt(0, 0, 0)?.and_utc() + chrono::Duration::days(1)),
        _ => None,
    }
}

/// Whether `time` is at least `age` before `now`.
fn older_than(time: DateTime<Utc>, now: DateTime<Utc>, age: Duration) -> bool {
    chrono::Duration::from_std(age).ok().and_then(|age| now.checked_sub_signed(age)).is_some_and(|t| time <= t)
}

async fn maintain_table(
    store: &Store,
    model: &str,
    table: &str,
    keep: Option<Duration>,
    pass: &Pass<'_>,
) -> Result<TableReport> {
    let mut report = TableReport { table: table.to_string(), ..Default::default() };
    let dir = Path::from(format!("{model}/{table}"));
    let depth = dir.parts().count();
    // The compactor is the only writer of manifests and outputs, so one listing shows it every
    // manifest whose output it sees.
    let listed: Vec<ObjectMeta> = store.object_store().list(Some(&dir)).try_collect().await?;
    let mut folders: BTreeMap<Path, Vec<ObjectMeta>> = BTreeMap::new();
    for meta in listed {
        folders.entry(folder_of(&meta.location)).or_default().push(meta);
    }
    for (folder, objects) in folders {
        let rel: Vec<String> = folder.parts().skip(depth).map(|p| p.as_ref().to_string()).collect();
        let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
        let Some(end) = partition_end(table, &rel) else { continue };
        let (manifest_metas, others): (Vec<ObjectMeta>, Vec<ObjectMeta>) =
            objects.into_iter().partition(|m| is_manifest(file_name(&m.location)));
        let data: BTreeMap<String, ObjectMeta> = others
            .iter()
            .filter(|m| is_data_file(file_name(&m.location)))
            .map(|m| (file_name(&m.location).to_string(), m.clone()))
            .collect();
        let manifests = read_manifests(store.object_store().as_ref(), manifest_metas.clone()).await?;
        let names: HashSet<&str> = data.keys().map(String::as_str).collect();
        let refs: Vec<&Manifest> = manifests.iter().map(|(_, m)| m.as_ref()).collect();
        let (effective, excluded) = resolve(&names, &refs);

        if keep.is_some_and(|keep| older_than(end, pass.now, keep)) {
            if others.is_empty() {
                // The data went in an earlier pass; the manifests outlived it, as readers need.
                for meta in &manifest_metas {
                    store.delete(&meta.location).await?;
                    report.files_deleted += 1;
                }
                continue;
            }
            // Excluded sources first, then the rest of the data, then profiles and the like; the
            // manifests in a later pass.
            let mut order: Vec<&ObjectMeta> = others.iter().collect();
            order.sort_by_key(|m| {
                let name = file_name(&m.location);
                (!excluded.contains(name), !is_data_file(name))
            });
            for meta in order {
                store.delete(&meta.location).await?;
                report.files_deleted += 1;
            }
            report.partitions_deleted += 1;
            continue;
        }
        let Some(config) = pass.compaction else { continue };
        let created = |meta: &ObjectMeta, m: &Manifest| {
            DateTime::parse_from_rfc3339(&m.created).map(|t| t.to_utc()).unwrap_or(meta.last_modified)
        };
        let profiles: HashSet<&str> =
            others.iter().map(|m| file_name(&m.location)).filter(|n| n.starts_with(PROFILE_PREFIX)).collect();
        for (i, (meta, m)) in manifests.iter().enumerate() {
            let old = older_than(created(meta, m), pass.now, config.grace);
            if effective[i] && old {
                for source in &m.sources {
                    if data.contains_key(source) {
                        store.delete(&folder.clone().join(source.as_str())).await?;
                        report.sources_deleted += 1;
                    }
                    let profile = profile_name(source);
                    if profiles.contains(profile.as_str()) {
                        store.delete(&folder.clone().join(profile.as_str())).await?;
                    }
                }
            } else if !effective[i] && old {
                // A crash between the manifest and its output. The output is deleted too, in case
                // a put that failed at the client still landed.
                store.delete(&folder.clone().join(m.output.as_str())).await?;
                store.delete(&meta.location).await?;
                report.stale_manifests_deleted += 1;
            }
        }
        let candidates: Vec<&ObjectMeta> = data
            .iter()
            .filter(|(name, meta)| {
                !excluded.contains(name.as_str())
                    && older_than(meta.last_modified, pass.now, config.min_age)
                    && meta.size < config.max_file_bytes
            })
            .map(|(_, meta)| meta)
            .collect();
        if candidates.len() < config.min_files {
            continue;
        }
        if let Some(done) = compact(store, &folder, &candidates, config, pass).await? {
            report.partitions_compacted += 1;
            report.files_merged += done.files;
            report.rows_merged += done.rows;
            report.bytes_before += done.bytes_before;
            report.bytes_after += done.bytes_after;
            tracing::debug!(folder = %folder, files = done.files, rows = done.rows, "partition compacted");
        }
    }
    Ok(report)
}

struct Compacted {
    files: usize,
    rows: u64,
    bytes_before: u64,
    bytes_after: u64,
}

/// Merges `candidates` (sorted by name) of one folder: as many as fit in `max_file_bytes`, with
/// the first one's columns (a file written under another schema waits for a later pass). The
/// output is built in memory, then the manifest is put, then the output.
async fn compact(
    store: &Store,
    folder: &Path,
    candidates: &[&ObjectMeta],
    config: &CompactionConfig,
    pass: &Pass<'_>,
) -> Result<Option<Compacted>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(pass.zstd_level)?))
        .set_created_by(format!("anchorwatch {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut fetched = Vec::new();
    let mut size = 0;
    for meta in candidates {
        if size + meta.size <= config.max_file_bytes {
            size += meta.size;
            let data = store.object_store().get(&meta.location).await?.bytes().await?;
            fetched.push((file_name(&meta.location).to_string(), data));
        }
    }
    // Decoding and encoding take a while for large partitions: off the async workers.
    let merged = tokio::task::spawn_blocking(move || merge(fetched, props))
        .await
        .map_err(|e| Error::Config(format!("compaction task failed: {e}")))??;
    let Some(Merged { data, sources, rows, bytes_read: total }) =
        merged.filter(|m| m.sources.len() >= config.min_files)
    else {
        return Ok(None);
    };
    let id = uuid::Uuid::now_v7().simple().to_string();
    let output = format!("{OUTPUT_PREFIX}{id}.parquet");
    let manifest = Manifest {
        output: output.clone(),
        sources,
        created: pass.now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    };
    let bytes_after = data.len() as u64;
    let json = serde_json::to_vec(&manifest).expect("a manifest serialises");
    store.put(&folder.clone().join(format!("{MANIFEST_PREFIX}{id}.json").as_str()), json.into()).await?;
    store.put(&folder.clone().join(output.as_str()), data).await?;
    Ok(Some(Compacted { files: manifest.sources.len(), rows, bytes_before: total, bytes_after }))
}

/// A compacted file, built in memory.
struct Merged {
    /// The Parquet file.
    data: Bytes,
    /// Names of the files merged into it.
    sources: Vec<String>,
    /// Rows in it.
    rows: u64,
    /// Bytes of the files merged.
    bytes_read: u64,
}

/// The merged file of `sources` (name, bytes) that share the first one's columns. `None` when
/// there is nothing to merge.
fn merge(sources: Vec<(String, Bytes)>, props: WriterProperties) -> Result<Option<Merged>> {
    let mut writer: Option<(ArrowWriter<Vec<u8>>, arrow::datatypes::SchemaRef)> = None;
    let mut names = Vec::new();
    let (mut rows, mut total) = (0, 0);
    for (name, data) in sources {
        let size = data.len() as u64;
        let builder = ParquetRecordBatchReaderBuilder::try_new(data)?;
        let (w, _) = match &mut writer {
            Some((_, schema)) if schema != builder.schema() => continue,
            Some(w) => w,
            None => {
                let schema = builder.schema().clone();
                writer.insert((ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props.clone()))?, schema))
            }
        };
        for batch in builder.build()? {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            w.write(&batch)?;
        }
        total += size;
        names.push(name);
    }
    let Some((writer, _)) = writer else { return Ok(None) };
    Ok(Some(Merged { data: Bytes::from(writer.into_inner()?), sources: names, rows, bytes_read: total }))
}

#[cfg(test)]
mod tests;

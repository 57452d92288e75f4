//! Window analysis as retained history grows: hourly prediction files (default 1M rows an hour in
//! 10 files, 8 features and the prediction) are written straight into a local store until the
//! history holds each size in `HISTORY` (millions of rows, default `10,100`), with a label file
//! per hour labeling a tenth of its predictions, so the label history grows too. At each size it
//! times, through `ModelMonitor::run_once` (list, scan, drift, quality, performance, results):
//! - a new hour's window, and the re-analysis of a complete window after one late 10k-row file
//!   arrives in it,
//! - each with `analysis.profiles = true` (per-file profiles) and `false` (a full scan of the
//!   window's rows), on the same files.
//!
//! Then it compacts the store (`anchorwatch compact`'s pass) and prints its size before and after.
//! Goal: window time flat as history grows tenfold.
//!
//! Run with `make bench-history` (`cargo bench --bench history`). `HOUR_ROWS` changes the rows per
//! hour, `BENCH_DIR` where the store goes (default a temporary folder; 100M rows take about
//! 3 GiB). Rows are written as Parquet directly, not through the ingest API, whose throughput
//! `make bench-ingest` measures. Not a test: the figures depend on the machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anchorwatch_analyzer::monitor::{AnalysisConfig, ModelMonitor, metrics::Metrics};
use anchorwatch_collector::compact::{self, CompactionConfig, Pass, RetentionConfig};
use anchorwatch_collector::schema::{FeatureConfig, FeatureKind, ModelSchema, ValueKind};
use anchorwatch_collector::store::Store;
use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const START_US: i64 = 1_795_132_800_000_000; // 2026-11-20T00:00:00Z
const HOUR_US: i64 = 3_600_000_000;
const FILES_PER_HOUR: usize = 10;
const LATE_ROWS: usize = 10_000;

fn schema() -> ModelSchema {
    let feature = |name: String, kind| FeatureConfig { name, kind, dim: None, nullable: true };
    let mut features: Vec<FeatureConfig> =
        (0..6).map(|i| feature(format!("num_{i}"), FeatureKind::Numerical)).collect();
    features.extend((0..2).map(|i| feature(format!("cat_{i}"), FeatureKind::Categorical)));
    ModelSchema { features, prediction: ValueKind::Numerical, label: ValueKind::Numerical, scores: vec![] }
}

/// `rows` rows of hour `hour` (from `START_US`), from `seed`; every fifth hour drifts. Numbers are
/// rounded to cents, as most logged features are, which keeps 100M rows within a few GiB.
fn batch(schema: &ModelSchema, rows: usize, hour: i64, seed: u64, with_meta: bool) -> RecordBatch {
    let mut rng = SmallRng::seed_from_u64(seed);
    let drift = hour % 5 == 4;
    let mut cols: Vec<(String, ArrayRef)> = Vec::new();
    if with_meta {
        let ids = StringArray::from_iter_values((0..rows).map(|i| format!("{seed:x}-{i:x}")));
        let times = (0..rows).map(|_| START_US + hour * HOUR_US + rng.random_range(0..HOUR_US));
        cols.push(("prediction_id".into(), Arc::new(ids)));
        cols.push((
            "timestamp".into(),
            Arc::new(TimestampMicrosecondArray::from_iter_values(times).with_timezone("UTC")),
        ));
        cols.push(("model_version".into(), Arc::new(StringArray::new_null(rows))));
    }
    for (i, f) in schema.features.iter().enumerate() {
        let array: ArrayRef = if f.kind == FeatureKind::Numerical {
            let shift = if drift && i < 4 { 0.4 } else { 0.0 };
            let scale = 10f64.powi(i as i32 % 3);
            Arc::new(Float64Array::from_iter_values((0..rows).map(|_| {
                let x = shift + rng.random::<f64>() + rng.random::<f64>();
                (x * scale * 100.0).round() / 100.0
            })))
        } else {
            let skewed = drift && i == 6;
            Arc::new(StringArray::from_iter_values((0..rows).map(|_| {
                let k = if skewed && rng.random_bool(0.4) { 0 } else { rng.random_range(0..8) };
                ["a", "b", "c", "d", "e", "f", "g", "h"][k]
            })))
        };
        cols.push((f.name.clone(), array));
    }
    let prediction = Float64Array::from_iter_values((0..rows).map(|_| (rng.random::<f64>() * 100.0).round() / 100.0));
    cols.push(("prediction".into(), Arc::new(prediction)));
    RecordBatch::try_from_iter(cols).unwrap()
}

fn write(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap())).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Writes prediction files into the store's hour partitions, each from a seed of its own, and
/// label files.
struct Files {
    schema: ModelSchema,
    root: PathBuf,
    seed: u64,
    late: usize,
}

impl Files {
    fn put(&mut self, hour: i64, name: &str, rows: usize) {
        self.seed += 1;
        let path = hour_dir(&self.root.join("predictions"), hour).join(format!("{name}.parquet"));
        write(&path, &batch(&self.schema, rows, hour, self.seed, true));
    }

    /// An hour's `FILES_PER_HOUR` files of `file_rows` rows, and with `labeled` a label file for
    /// every tenth of their rows (label time the hour's end, received now).
    fn hour(&mut self, hour: i64, file_rows: usize, labeled: bool) {
        let mut ids = Vec::new();
        for f in 0..FILES_PER_HOUR {
            self.put(hour, &format!("part-gen-{hour:06}-{f:02}"), file_rows);
            ids.extend((0..file_rows).step_by(10).map(|i| format!("{:x}-{i:x}", self.seed)));
        }
        if !labeled {
            return;
        }
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let n = ids.len();
        let time = |t: i64| Arc::new(TimestampMicrosecondArray::from_value(t, n).with_timezone("UTC")) as ArrayRef;
        let end = START_US + (hour + 1) * HOUR_US;
        let labels = RecordBatch::try_from_iter([
            ("prediction_id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("label", Arc::new(Float64Array::from_iter_values((0..n).map(|_| rng.random::<f64>())))),
            ("timestamp", time(end)),
            ("received_at", time(chrono::Utc::now().timestamp_micros())),
        ])
        .unwrap();
        let date = chrono::DateTime::from_timestamp_micros(end).unwrap().format("date=%Y-%m-%d");
        write(&self.root.join(format!("labels/{date}/part-lab-{hour:06}.parquet")), &labels);
    }

    /// One late file of `LATE_ROWS` rows in `hour`.
    fn late(&mut self, hour: i64) {
        self.late += 1;
        self.put(hour, &format!("part-late-{:04}", self.late), LATE_ROWS);
    }
}

fn hour_dir(predictions: &Path, hour: i64) -> PathBuf {
    let t = chrono::DateTime::from_timestamp_micros(START_US + hour * HOUR_US).unwrap();
    predictions.join(t.format("date=%Y-%m-%d/hour=%H").to_string())
}

/// Data files and their bytes under `dir` (profiles and manifests apart).
fn store_size(dir: &Path) -> (usize, u64, u64) {
    let (mut files, mut bytes, mut other) = (0, 0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = e.metadata().unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if meta.is_dir() {
                stack.push(e.path());
            } else if name.ends_with(".parquet") && !name.starts_with('_') {
                files += 1;
                bytes += meta.len();
            } else {
                other += meta.len();
            }
        }
    }
    (files, bytes, other)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

async fn timed(monitor: &ModelMonitor) -> (f64, usize) {
    let started = Instant::now();
    let summary = monitor.run_once().await.unwrap();
    (started.elapsed().as_secs_f64(), summary.windows.len())
}

fn main() {
    let steps: Vec<u64> = std::env::var("HISTORY")
        .unwrap_or_else(|_| "10,100".into())
        .split(',')
        .map(|s| s.trim().parse::<u64>().expect("HISTORY is a comma-separated list of millions of rows") * 1_000_000)
        .collect();
    let hour_rows: usize =
        std::env::var("HOUR_ROWS").map_or(1_000_000, |s| s.parse().expect("HOUR_ROWS is a row count"));
    let file_rows = hour_rows / FILES_PER_HOUR;
    let temp =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()))
            .unwrap();
    let root = temp.path();
    let schema = schema();
    // Two stores sharing one predictions and one labels folder: one analyses from profiles, one
    // by full scans.
    let predictions = root.join("full/m/predictions");
    std::fs::create_dir_all(root.join("profiles/m")).unwrap();
    for table in ["predictions", "labels"] {
        std::fs::create_dir_all(root.join("full/m").join(table)).unwrap();
        std::os::unix::fs::symlink(root.join("full/m").join(table), root.join("profiles/m").join(table)).unwrap();
    }
    write(&root.join("reference.parquet"), &batch(&schema, 200_000, 0, 1, false));

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let open = |name: &str, profiles: bool| {
        let store = Store::open(root.join(name).to_str().unwrap()).unwrap();
        let config = AnalysisConfig { reference: Some(root.join("reference.parquet")), profiles, ..Default::default() };
        let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
        let monitor = rt
            .block_on(ModelMonitor::open(
                "m".into(),
                schema.clone(),
                config,
                store.clone(),
                root.to_path_buf(),
                8 << 30,
                metrics,
            ))
            .unwrap();
        (store, monitor)
    };
    let (full_store, full) = open("full", false);
    let (_, profiled) = open("profiles", true);

    println!(
        "anchorwatch window analysis over growing history: {hour_rows} rows an hour in {FILES_PER_HOUR} files, 8 features + prediction, a tenth labeled, 1h windows"
    );
    println!(
        "{:>12} {:>6} {:>9} | {:>23} | {:>23} | {:>23}",
        "history rows",
        "files",
        "store MiB",
        "catch-up s: full  prof",
        "new hour s: full  prof",
        "late file s: full  prof"
    );
    let mut hours: i64 = 0;
    let mut files = Files { schema: schema.clone(), root: root.join("full/m"), seed: 1000, late: 0 };
    let mut first_step: Option<(u64, [f64; 4])> = None;
    for target in steps {
        let started = Instant::now();
        while (hours as u64) * (hour_rows as u64) < target {
            files.hour(hours, file_rows, true);
            hours += 1;
            if hours % 10 == 0 {
                eprintln!(
                    "  written {hours} hours ({} M rows) in {:.0} s",
                    hours as usize * hour_rows / 1_000_000,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        // Labels re-analyse the windows within the label lookback without profiles, only the
        // labeled hours' windows with them.
        let (catch_full, _) = rt.block_on(timed(&full));
        let (catch_prof, _) = rt.block_on(timed(&profiled));
        // A new hour, no labels yet.
        files.hour(hours, file_rows, false);
        hours += 1;
        let (new_full, _) = rt.block_on(timed(&full));
        let (new_prof, _) = rt.block_on(timed(&profiled));
        // A late file in the hour before the newest.
        files.late(hours - 2);
        let (late_full, n_full) = rt.block_on(timed(&full));
        let (late_prof, n_prof) = rt.block_on(timed(&profiled));
        assert_eq!((n_full, n_prof), (1, 1), "one window re-analysed");
        let (count, bytes, _) = store_size(&predictions);
        let rows = hours as u64 * hour_rows as u64 + files.late as u64 * LATE_ROWS as u64;
        println!(
            "{rows:>12} {count:>6} {:>9.0} | {catch_full:>15.1} {catch_prof:>7.1} | {new_full:>15.3} {new_prof:>7.3} | {late_full:>15.3} {late_prof:>7.3}",
            mib(bytes)
        );
        match first_step {
            None => first_step = Some((rows, [new_full, new_prof, late_full, late_prof])),
            Some((r0, [nf0, np0, lf0, lp0])) => {
                let grows = |a: f64, b: f64| if a < 1.5 && b < 1.5 { "flat" } else { "grows" };
                println!(
                    "{:>12} history {:.1}×: new hour {:.2}×, late file {:.2}× time with profiles ({}); {:.2}× and {:.2}× with full scans ({})",
                    "",
                    rows as f64 / r0 as f64,
                    new_prof / np0,
                    late_prof / lp0,
                    grows(new_prof / np0, late_prof / lp0),
                    new_full / nf0,
                    late_full / lf0,
                    grows(new_full / nf0, late_full / lf0),
                );
            }
        }
    }

    // Compaction: two passes (merge, then delete the sources once their grace is over).
    let (files_before, bytes_before, _) = store_size(&predictions);
    let config = CompactionConfig {
        min_files: 2,
        min_age: std::time::Duration::ZERO,
        grace: std::time::Duration::ZERO,
        ..Default::default()
    };
    let retention = RetentionConfig::default();
    let started = Instant::now();
    for _ in 0..2 {
        let pass = Pass { compaction: Some(&config), retention: &retention, zstd_level: 1, now: chrono::Utc::now() };
        rt.block_on(compact::run(&full_store, "m", &pass)).unwrap();
    }
    let compaction = started.elapsed().as_secs_f64();
    let (files_after, bytes_after, _) = store_size(&predictions);
    println!(
        "compaction: {files_before} files, {:.0} MiB → {files_after} files, {:.0} MiB in {compaction:.1} s",
        mib(bytes_before),
        mib(bytes_after)
    );
    let (catch_full, _) = rt.block_on(timed(&full));
    let (catch_prof, _) = rt.block_on(timed(&profiled));
    files.late(hours - 3);
    let (late_full, _) = rt.block_on(timed(&full));
    let (late_prof, _) = rt.block_on(timed(&profiled));
    println!(
        "after compaction: re-analysis of the compacted windows {catch_full:.1} s full, {catch_prof:.1} s profiles; late file {late_full:.3} s full, {late_prof:.3} s profiles"
    );
}

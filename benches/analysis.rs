//! Window analysis time against a cached reference: one window of N rows × 20 features
//! (15 numerical, 5 categorical) with drift in a third of them, for N from 100k up, through the
//! same code the service runs (`ModelMonitor::run_once`: list, DataFusion scan, drift, quality,
//! performance, results written). Run with `make bench-analysis` (`cargo bench --bench analysis`);
//! `ROWS=100000,1000000` chooses the sizes (default 100k, 1M, 3M, 10M). It prints the time per row
//! and how the time grows from one size to the next: linear growth keeps the time per row flat.
//! Not a test: the figures depend on the machine. 10M rows need about 4 GiB of memory.

use std::sync::Arc;
use std::time::Instant;

use anchorwatch_analyzer::monitor::{AnalysisConfig, ModelMonitor, metrics::Metrics};
use anchorwatch_collector::schema::{FeatureConfig, FeatureKind, ModelSchema, ValueKind};
use anchorwatch_collector::store::Store;
use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const HOUR_US: i64 = 1_795_132_800_000_000; // 2026-11-20T00:00:00Z
const CHUNK: usize = 250_000;

fn schema() -> ModelSchema {
    let mut features: Vec<FeatureConfig> = (0..15)
        .map(|i| FeatureConfig { name: format!("num_{i}"), kind: FeatureKind::Numerical, dim: None, nullable: true })
        .collect();
    features.extend((0..5).map(|i| FeatureConfig {
        name: format!("cat_{i}"),
        kind: FeatureKind::Categorical,
        dim: None,
        nullable: true,
    }));
    ModelSchema { features, prediction: ValueKind::Numerical, label: ValueKind::Numerical, scores: vec![] }
}

/// `rows` rows from `seed`; with `drift`, the first five numerical and two categorical shift.
fn batch(schema: &ModelSchema, rows: usize, seed: u64, drift: bool, with_meta: bool) -> RecordBatch {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut cols: Vec<(String, ArrayRef)> = Vec::new();
    if with_meta {
        cols.push((
            "prediction_id".into(),
            Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("{seed}-{i}")))),
        ));
        cols.push((
            "timestamp".into(),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| HOUR_US + (i as i64 % 3_600_000_000)))
                    .with_timezone("UTC"),
            ),
        ));
        cols.push(("model_version".into(), Arc::new(StringArray::new_null(rows))));
    }
    for (i, f) in schema.features.iter().enumerate() {
        let shift = drift && i < 5;
        let array: ArrayRef = if f.kind == FeatureKind::Numerical {
            let mean = if shift { 0.5 } else { 0.0 };
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|_| mean + rng.random::<f64>() * 2.0 + rng.random::<f64>()),
            ))
        } else {
            // Drifted categories: half the rows take "a", the rest spread evenly.
            let skewed = drift && (15..17).contains(&i);
            Arc::new(StringArray::from_iter_values((0..rows).map(|_| {
                let k = if skewed && rng.random_bool(0.5) { 0 } else { rng.random_range(0..6) };
                ["a", "b", "c", "d", "e", "f"][k]
            })))
        };
        cols.push((f.name.clone(), array));
    }
    let prediction: ArrayRef = Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.random::<f64>())));
    cols.push(("prediction".into(), prediction));
    RecordBatch::try_from_iter(cols).unwrap()
}

fn write(path: &std::path::Path, batches: impl Iterator<Item = RecordBatch>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap())).build();
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    for b in batches {
        let w = writer.get_or_insert_with(|| {
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), b.schema(), Some(props.clone())).unwrap()
        });
        w.write(&b).unwrap();
    }
    writer.unwrap().close().unwrap();
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let sizes: Vec<usize> = std::env::var("ROWS")
        .unwrap_or_else(|_| "100000,1000000,3000000,10000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("ROWS is a comma-separated list of row counts"))
        .collect();
    let schema = schema();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "anchorwatch window analysis benchmark: 20 features (15 numerical, 5 categorical), reference 100k rows, one 1h window"
    );
    println!(
        "{:>12} {:>10} {:>10} {:>12} {:>9} {:>16}",
        "rows", "seconds", "ns/row", "rows/s", "drifted", "process peak RSS"
    );
    let mut previous: Option<(usize, f64)> = None;
    for rows in sizes {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let reference = root.join("reference.parquet");
        write(&reference, std::iter::once(batch(&schema, 100_000, 1, false, false)));
        let file = root.join("store/m/predictions/date=2026-11-20/hour=00/part-bench.parquet");
        let mut left = rows;
        let mut seed = 100;
        write(
            &file,
            std::iter::from_fn(|| {
                (left > 0).then(|| {
                    let n = left.min(CHUNK);
                    left -= n;
                    seed += 1;
                    batch(&schema, n, seed, true, true)
                })
            }),
        );
        let config = AnalysisConfig { reference: Some(reference), ..Default::default() };
        let (elapsed, drifted) = rt.block_on(async {
            let store = Store::open(root.join("store").to_str().unwrap()).unwrap();
            let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
            let monitor =
                ModelMonitor::open("m".into(), schema.clone(), config, store, root.to_path_buf(), 8 << 30, metrics)
                    .await
                    .unwrap();
            // Load and profile the reference first: the benchmark measures a window against a cached one.
            monitor
                .upload_reference(std::fs::read(root.join("reference.parquet")).unwrap().into(), "parquet")
                .await
                .unwrap();
            let started = Instant::now();
            let summary = monitor.run_once().await.unwrap();
            let elapsed = started.elapsed().as_secs_f64();
            assert_eq!(summary.windows.len(), 1, "one window expected: {summary:?}");
            let drift = std::fs::read_to_string(root.join("store/m/results/state.json")).unwrap();
            let state: serde_json::Value = serde_json::from_str(&drift).unwrap();
            let drifted = state["latest"][1]["drift"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["drifted"] == true && d["role"] == "feature")
                .count();
            (elapsed, drifted)
        });
        println!(
            "{rows:>12} {elapsed:>10.3} {:>10.0} {:>12.0} {drifted:>6}/20 {:>12.0} MiB",
            elapsed * 1e9 / rows as f64,
            rows as f64 / elapsed,
            peak_rss_mib()
        );
        if let Some((r0, t0)) = previous {
            let (time, size) = (elapsed / t0, rows as f64 / r0 as f64);
            println!(
                "{:>12} growth from {r0} rows: {time:.2}× time for {size:.1}× rows ({})",
                "",
                if time <= size * 1.1 { "linear or better" } else { "superlinear" }
            );
        }
        previous = Some((rows, elapsed));
    }
}

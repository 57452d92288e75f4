//! Window analysis from per-file profiles (`analysis.profiles = true`) against the same windows
//! analysed from their rows, through the real store and DataFusion: the same windows, rows,
//! verdicts, data-quality figures and exact scores (wasserstein within its documented bound);
//! profiles stored beside the files; and a window re-analysed after a new file arrives profiles
//! only that file.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;

use anchorwatch_analyzer::monitor::metrics::Metrics;
use anchorwatch_analyzer::monitor::{AnalysisConfig, ModelMonitor};
use anchorwatch_analyzer::sql::{self, QueryLimits};
use anchorwatch_collector::compact;
use anchorwatch_collector::schema::{FeatureConfig, FeatureKind, ModelSchema, ValueKind};
use anchorwatch_collector::store::Store;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Float64Type};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;

const HOUR: i64 = 3_600_000_000;
const START: i64 = 1_795_132_800_000_000; // 2026-11-20T00:00:00Z

fn schema() -> ModelSchema {
    let feature = |name: &str, kind| FeatureConfig { name: name.into(), kind, dim: None, nullable: true };
    ModelSchema {
        features: vec![
            feature("income", FeatureKind::Numerical),
            feature("age", FeatureKind::Numerical),
            feature("rooms", FeatureKind::Numerical),
            feature("city", FeatureKind::Categorical),
            feature("channel", FeatureKind::Categorical),
        ],
        prediction: ValueKind::Numerical,
        label: ValueKind::Numerical,
        scores: Vec::new(),
    }
}

/// A small deterministic generator (SplitMix64), so the test needs no random crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.next(), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `n` rows with event times from `first` on, one every `step` µs; `shift` moves every feature.
fn rows(seed: u64, n: usize, first: i64, step: i64, shift: f64, with_ids: bool) -> RecordBatch {
    let mut rng = Rng(seed);
    let mut income = Vec::new();
    let mut age = Vec::new();
    let mut rooms = Vec::new();
    let mut city = Vec::new();
    let mut channel = Vec::new();
    let mut prediction = Vec::new();
    for i in 0..n {
        let z = rng.normal();
        income.push((i % 17 != 5).then_some(50_000.0 + 12_000.0 * (z + shift)));
        age.push(Some((30.0 + 8.0 * rng.normal() + 10.0 * shift).round()));
        rooms.push(Some(((rng.next() + shift) * 3.99).floor()));
        let c = ["Oslo", "Lima", "Kyiv", "Pune", "Nuuk"];
        city.push((i % 23 != 1).then(|| c[((rng.next() + shift / 2.0) * 4.0) as usize % 5].to_string()));
        channel.push(Some(if rng.next() < 0.3 + shift / 3.0 { "web" } else { "app" }.to_string()));
        prediction.push(z * 0.5 + shift);
    }
    let time: TimestampMicrosecondArray = (0..n as i64).map(|i| Some(first + i * step)).collect();
    let mut columns: Vec<(&str, ArrayRef)> = Vec::new();
    if with_ids {
        let ids: StringArray = (0..n).map(|i| Some(format!("{seed}-{i}"))).collect();
        columns.push(("prediction_id", Arc::new(ids)));
        columns.push(("timestamp", Arc::new(time.with_timezone("UTC"))));
        columns.push(("model_version", Arc::new(StringArray::from(vec![Some("v1"); n]))));
    }
    columns.extend([
        ("income", Arc::new(Float64Array::from(income)) as ArrayRef),
        ("age", Arc::new(Float64Array::from(age))),
        ("rooms", Arc::new(Float64Array::from(rooms))),
        ("city", Arc::new(StringArray::from(city))),
        ("channel", Arc::new(StringArray::from(channel))),
        ("prediction", Arc::new(Float64Array::from(prediction))),
    ]);
    RecordBatch::try_from_iter(columns).unwrap()
}

fn parquet(batch: &RecordBatch) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    buf
}

/// Puts a prediction file of `rows` into the hour partition of its first row.
async fn put_file(store: &Store, name: &str, batch: &RecordBatch) {
    let first = batch
        .column_by_name("timestamp")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    let t = chrono::DateTime::from_timestamp_micros(first).unwrap();
    let path = Path::from(format!("m/predictions/{}/{name}.parquet", t.format("date=%Y-%m-%d/hour=%H")));
    store.put(&path, parquet(batch).into()).await.unwrap();
}

/// A monitor of the store in `dir`; `lookback_days` is `label_lookback`.
async fn monitor(dir: &FsPath, profiles: bool, lookback_days: u64) -> (Store, ModelMonitor) {
    let store = Store::open(dir.join("store").to_str().unwrap()).unwrap();
    let config = AnalysisConfig {
        reference: Some("reference.parquet".into()),
        profiles,
        label_lookback: std::time::Duration::from_secs(lookback_days * 86400),
        ..AnalysisConfig::default()
    };
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    let monitor = ModelMonitor::open("m".into(), schema(), config, store.clone(), dir.to_path_buf(), 1 << 30, metrics)
        .await
        .unwrap();
    (store, monitor)
}

/// The same files analysed twice: from rows, and from profiles.
struct Both {
    /// The stores' folders: from rows, from profiles.
    _dirs: [tempfile::TempDir; 2],
    raw_store: Store,
    raw: ModelMonitor,
    profiled_store: Store,
    profiled: ModelMonitor,
}

async fn both(reference: &[u8]) -> Both {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for dir in &dirs {
        std::fs::write(dir.path().join("reference.parquet"), reference).unwrap();
    }
    // The fixed event times of these tests stay within the lookback of labels.
    let (raw_store, raw) = monitor(dirs[0].path(), false, 3650).await;
    let (profiled_store, profiled) = monitor(dirs[1].path(), true, 3650).await;
    Both { _dirs: dirs, raw_store, raw, profiled_store, profiled }
}

/// Names of the label join state's files, in order.
async fn label_state(store: &Store) -> Vec<String> {
    use futures::TryStreamExt;
    let mut names: Vec<String> = store
        .object_store()
        .list(Some(&Path::from("m/results/_labels")))
        .map_ok(|m| m.location.filename().unwrap().to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

/// Each tumbling window's drift rows: (start, column) → (stattest, score, drifted, rows).
type Drift = BTreeMap<(i64, String), (String, f64, bool, u64)>;

async fn results(store: &Store) -> (Drift, BTreeMap<(i64, String, String), f64>) {
    let ctx = sql::session(store, "m", &schema(), 1 << 30).await.unwrap();
    let limits = QueryLimits { max_rows: 100_000, memory_limit: 1 << 30, timeout: std::time::Duration::from_secs(60) };
    let cast =
        |b: &RecordBatch, name: &str, to: &DataType| arrow::compute::cast(b.column_by_name(name).unwrap(), to).unwrap();
    let mut drift = Drift::new();
    let q = "SELECT * FROM drift WHERE \"window\" = 'tumbling'";
    for b in sql::run(&ctx, q, &limits).await.unwrap().batches {
        let (start, rows) = (cast(&b, "window_start", &DataType::Int64), cast(&b, "rows", &DataType::Int64));
        let (column, test) = (
            b.column_by_name("column").unwrap().as_string::<i32>(),
            b.column_by_name("stattest").unwrap().as_string::<i32>(),
        );
        let score = b.column_by_name("score").unwrap().as_primitive::<Float64Type>().clone();
        let drifted = b.column_by_name("drifted").unwrap().as_boolean().clone();
        for i in 0..b.num_rows() {
            let key = (start.as_primitive::<arrow::datatypes::Int64Type>().value(i), column.value(i).to_string());
            let value = (
                test.value(i).to_string(),
                score.value(i),
                drifted.value(i),
                rows.as_primitive::<arrow::datatypes::Int64Type>().value(i) as u64,
            );
            drift.insert(key, value);
        }
    }
    let mut quality = BTreeMap::new();
    for b in sql::run(&ctx, "SELECT * FROM quality WHERE \"window\" = 'tumbling'", &limits).await.unwrap().batches {
        let start = cast(&b, "window_start", &DataType::Int64);
        let (feature, check) = (
            b.column_by_name("feature").unwrap().as_string::<i32>(),
            b.column_by_name("check").unwrap().as_string::<i32>(),
        );
        let value = b.column_by_name("value").unwrap().as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let v = if value.is_null(i) { f64::NAN } else { value.value(i) };
            quality.insert(
                (
                    start.as_primitive::<arrow::datatypes::Int64Type>().value(i),
                    feature.value(i).to_string(),
                    check.value(i).to_string(),
                ),
                v,
            );
        }
    }
    (drift, quality)
}

/// Names of the profiles stored beside the prediction files.
async fn profiles(store: &Store) -> BTreeMap<String, chrono::DateTime<chrono::Utc>> {
    use futures::TryStreamExt;
    let metas: Vec<_> = store.object_store().list(Some(&Path::from("m/predictions"))).try_collect().await.unwrap();
    metas
        .into_iter()
        .filter(|m| m.location.filename().is_some_and(|f| f.starts_with("_profile-")))
        .map(|m| (m.location.to_string(), m.last_modified))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_from_profiles_match_windows_from_rows() {
    let Both { _dirs, raw_store, raw, profiled_store, profiled } =
        both(&parquet(&rows(1, 20_000, 0, 1, 0.0, false))).await;
    // Three hours, two to three files each; hour 2 drifts. A file may cross into the next hour.
    let files = [
        ("part-a-0", rows(10, 3000, START, 700_000, 0.0, true)),
        ("part-b-0", rows(11, 2500, START + 10 * 60_000_000, 900_000, 0.0, true)),
        ("part-a-1", rows(12, 3000, START + HOUR + 1, 600_000, 0.02, true)),
        ("part-b-1", rows(13, 1800, START + HOUR + 7, 1_000_000, 0.02, true)),
        ("part-a-2", rows(14, 4000, START + 2 * HOUR, 500_000, 0.6, true)),
        ("part-b-2", rows(15, 1200, START + 2 * HOUR + 3, 2_000_000, 0.6, true)),
        ("part-c-2", rows(16, 900, START + 2 * HOUR + 5, 3_000_000, 0.6, true)),
    ];
    for (name, batch) in &files {
        put_file(&raw_store, name, batch).await;
        put_file(&profiled_store, name, batch).await;
    }
    let a = raw.run_once().await.unwrap();
    let b = profiled.run_once().await.unwrap();
    assert_eq!(a.windows, b.windows, "the same windows are analysed");
    assert!(a.windows.len() >= 3, "{:?}", a.windows);

    let (raw_drift, raw_quality) = results(&raw_store).await;
    let (drift, quality) = results(&profiled_store).await;
    assert_eq!(raw_drift.keys().collect::<Vec<_>>(), drift.keys().collect::<Vec<_>>());
    let mut drifted = 0;
    for (key, (test, score, is_drifted, n)) in &raw_drift {
        let (p_test, p_score, p_drifted, p_n) = &drift[key];
        assert_eq!((test, is_drifted, n), (p_test, p_drifted, p_n), "{key:?}");
        // Wasserstein from the sketch is within its bound (< 0.03 here, see profile.rs); every
        // count-based score is exact.
        let tolerance = if test == "wasserstein" { 0.03 } else { 1e-12 * score.abs().max(1e-300) };
        assert!(
            (score - p_score).abs() <= tolerance || score.is_nan() && p_score.is_nan(),
            "{key:?}: {score} vs {p_score}"
        );
        drifted += usize::from(*is_drifted);
    }
    assert!(drifted >= 3, "the shifted hour drifts: {raw_drift:?}");
    assert!(raw_drift.values().any(|v| v.0 == "wasserstein") && raw_drift.values().any(|v| v.0 == "jensenshannon"));
    assert_eq!(raw_quality.len(), quality.len());
    for (key, v) in &raw_quality {
        assert!(v == &quality[key] || v.is_nan() && quality[key].is_nan(), "{key:?}: {v} vs {}", quality[key]);
    }

    // One profile per file, beside it.
    let stored = profiles(&profiled_store).await;
    assert_eq!(stored.len(), files.len(), "{stored:?}");

    // A new file in hour 2: its windows are re-analysed, and only it is profiled.
    let late = rows(17, 700, START + 2 * HOUR + 11, 4_000_000, 0.6, true);
    put_file(&raw_store, "part-d-2", &late).await;
    put_file(&profiled_store, "part-d-2", &late).await;
    let a = raw.run_once().await.unwrap();
    let b = profiled.run_once().await.unwrap();
    assert_eq!(a.windows, b.windows);
    assert!(!b.windows.is_empty());
    let after = profiles(&profiled_store).await;
    assert_eq!(after.len(), files.len() + 1);
    for (path, modified) in &stored {
        assert_eq!(after.get(path), Some(modified), "{path} was not profiled again");
    }
    let (raw_drift, _) = results(&raw_store).await;
    let (drift, _) = results(&profiled_store).await;
    for (key, (test, _, is_drifted, n)) in &raw_drift {
        let (p_test, _, p_drifted, p_n) = &drift[key];
        assert_eq!((test, is_drifted, n), (p_test, p_drifted, p_n), "{key:?} after the late file");
    }
    let profile_text = profiled_store
        .object_store()
        .get(&Path::from(after.keys().next().unwrap().as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(std::str::from_utf8(&profile_text).unwrap().contains("\"window_us\":3600000000"));

    // Compaction of the profiled store merges every hour's files into one: no window changes, so
    // none is analysed again, and the merged sources' profiles go with them.
    let config = compact::CompactionConfig {
        min_files: 2,
        min_age: std::time::Duration::ZERO,
        grace: std::time::Duration::ZERO,
        ..Default::default()
    };
    let retention = compact::RetentionConfig::default();
    for _ in 0..2 {
        let pass =
            compact::Pass { compaction: Some(&config), retention: &retention, zstd_level: 1, now: chrono::Utc::now() };
        compact::run(&profiled_store, "m", &pass).await.unwrap();
    }
    let compacted = profiles(&profiled_store).await;
    assert!(compacted.is_empty(), "the sources' profiles are deleted with them: {compacted:?}");
    let quiet = profiled.run_once().await.unwrap();
    assert!(quiet.windows.is_empty(), "compaction alone re-analyses nothing: {quiet:?}");
    let (unchanged, _) = results(&profiled_store).await;
    assert_eq!(unchanged, drift);

    // A late file after compaction: its window is analysed from the compacted file's new profile
    // and the late file's, with the same outcome as the uncompacted rows.
    let late = rows(18, 500, START + HOUR + 13, 5_000_000, 0.02, true);
    put_file(&raw_store, "part-e-1", &late).await;
    put_file(&profiled_store, "part-e-1", &late).await;
    let a = raw.run_once().await.unwrap();
    let b = profiled.run_once().await.unwrap();
    assert_eq!(a.windows, b.windows);
    assert_eq!(a.windows, vec![START + HOUR]);
    let (raw_drift, _) = results(&raw_store).await;
    let (drift, _) = results(&profiled_store).await;
    for (key, (test, score, is_drifted, n)) in &raw_drift {
        let (p_test, p_score, p_drifted, p_n) = &drift[key];
        assert_eq!((test, is_drifted, n), (p_test, p_drifted, p_n), "{key:?} after compaction");
        assert!((score - p_score).abs() <= 0.03, "{key:?} after compaction: {score} vs {p_score}");
    }
    assert_eq!(profiles(&profiled_store).await.len(), 2, "the compacted file of hour 1 and the late file");
}

/// `batch` with a `label` column: the prediction plus noise.
fn with_label(batch: &RecordBatch, seed: u64) -> RecordBatch {
    let mut rng = Rng(seed);
    let prediction = batch.column_by_name("prediction").unwrap().as_primitive::<Float64Type>();
    let label: Float64Array = prediction.values().iter().map(|p| Some(p + 0.3 * rng.normal())).collect();
    let mut columns: Vec<(String, ArrayRef)> =
        batch.schema().fields().iter().map(|f| f.name().clone()).zip(batch.columns().iter().cloned()).collect();
    columns.push(("label".into(), Arc::new(label)));
    RecordBatch::try_from_iter(columns).unwrap()
}

/// A label file: (prediction id, label, label time, received at).
async fn put_labels(store: &Store, name: &str, rows: &[(String, f64, i64, i64)]) {
    let time = |f: fn(&(String, f64, i64, i64)) -> i64| {
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC")) as ArrayRef
    };
    let batch = RecordBatch::try_from_iter([
        ("prediction_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))) as ArrayRef),
        ("label", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1)))),
        ("timestamp", time(|r| r.2)),
        ("received_at", time(|r| r.3)),
    ])
    .unwrap();
    let path = Path::from(format!("m/labels/date=2026-11-20/{name}.parquet"));
    store.put(&path, parquet(&batch).into()).await.unwrap();
}

/// Labels for rows `ids` of the prediction file generated with `seed` (see [`rows`]): its
/// prediction plus noise, plus `offset`.
fn labels_of(
    seed: u64,
    n: usize,
    ids: impl Iterator<Item = usize>,
    offset: f64,
    received: i64,
) -> Vec<(String, f64, i64, i64)> {
    let batch = with_label(&rows(seed, n, START, 1, 0.0, true), seed + 1000);
    let label = batch.column_by_name("label").unwrap().as_primitive::<Float64Type>();
    ids.map(|i| (format!("{seed}-{i}"), label.value(i) + offset, START + 3 * HOUR + i as i64, received)).collect()
}

/// Each tumbling window's performance rows: (start, metric, kind) → (labeled rows, value).
async fn performance(store: &Store) -> BTreeMap<(i64, String, String), (u64, f64)> {
    let ctx = sql::session(store, "m", &schema(), 1 << 30).await.unwrap();
    let limits = QueryLimits { max_rows: 100_000, memory_limit: 1 << 30, timeout: std::time::Duration::from_secs(60) };
    let q = "SELECT CAST(window_start AS BIGINT) AS s, labeled_rows, metric, kind, value FROM performance \
             WHERE \"window\" = 'tumbling'";
    let mut out = BTreeMap::new();
    for b in sql::run(&ctx, q, &limits).await.unwrap().batches {
        let start = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        let labeled = arrow::compute::cast(b.column(1), &DataType::UInt64).unwrap();
        let labeled = labeled.as_primitive::<arrow::datatypes::UInt64Type>();
        let (metric, kind) = (b.column(2).as_string::<i32>(), b.column(3).as_string::<i32>());
        let value = b.column(4).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let v = if value.is_null(i) { f64::NAN } else { value.value(i) };
            out.insert((start.value(i), metric.value(i).to_string(), kind.value(i).to_string()), (labeled.value(i), v));
        }
    }
    out
}

/// The labels' drift and performance rows of both stores agree.
async fn assert_same_labels(raw: &Store, profiled: &Store, when: &str) {
    let (a, b) = (performance(raw).await, performance(profiled).await);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{when}");
    for (key, (rows, value)) in &a {
        let (p_rows, p_value) = b[key];
        assert_eq!(*rows, p_rows, "{when}: {key:?}");
        // Equal up to the order of the rows' sums (the join may order rows differently).
        assert!(
            (value - p_value).abs() <= 1e-12 * value.abs() || value.is_nan() && p_value.is_nan(),
            "{when}: {key:?}: {value} vs {p_value}"
        );
    }
    let ((a, _), (b, _)) = (results(raw).await, results(profiled).await);
    let target = |d: &Drift| {
        d.iter().filter(|((_, c), _)| c == "label").map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
    };
    assert!(!target(&a).is_empty(), "{when}: the target is tested");
    assert_eq!(target(&a), target(&b), "{when}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_from_the_join_state_match_the_label_join() {
    let Both { _dirs, raw_store, raw, profiled_store, profiled } =
        both(&parquet(&with_label(&rows(1, 20_000, 0, 1, 0.0, false), 2))).await;
    let files = [
        ("part-a-0", rows(10, 3000, START, 1_000_000, 0.0, true)),
        ("part-a-1", rows(12, 3000, START + HOUR + 1, 1_000_000, 0.3, true)),
        ("part-a-2", rows(14, 3000, START + 2 * HOUR, 1_000_000, 0.0, true)),
    ];
    for (name, batch) in &files {
        put_file(&raw_store, name, batch).await;
        put_file(&profiled_store, name, batch).await;
    }
    // Labels for a third of hour 0 and half of hour 1, for predictions not stored yet, and for
    // ids no prediction has.
    let received = START + 4 * HOUR;
    let mut first = labels_of(10, 3000, (0..3000).step_by(3), 0.0, received);
    first.extend(labels_of(12, 3000, (0..3000).step_by(2), 0.0, received));
    first.extend(labels_of(99, 300, 0..200, 0.0, received));
    first.extend((0..50).map(|i| (format!("nope-{i}"), 1.0, START, received)));
    put_labels(&raw_store, "part-l-0", &first).await;
    put_labels(&profiled_store, "part-l-0", &first).await;
    raw.run_once().await.unwrap();
    profiled.run_once().await.unwrap();
    assert_same_labels(&raw_store, &profiled_store, "first labels").await;
    let perf = performance(&profiled_store).await;
    let labeled = |start: i64| perf[&(start, "label_coverage".to_string(), "realized".to_string())].0;
    assert_eq!((labeled(START), labeled(START + HOUR), labeled(START + 2 * HOUR)), (1000, 1500, 0), "{perf:?}");

    // Relabels: received later for hour 0 (they win), received earlier for hour 1 (they lose).
    // The windows of the predictions they label are analysed again, not hour 2's.
    let state_path = Path::from("m/results/state.json");
    let saved = profiled_store.object_store().get(&state_path).await.unwrap().bytes().await.unwrap();
    let mut second = labels_of(10, 3000, (0..3000).step_by(6), 1.0, received + HOUR);
    second.extend(labels_of(12, 3000, (0..3000).step_by(4), -5.0, received - HOUR));
    put_labels(&raw_store, "part-l-1", &second).await;
    put_labels(&profiled_store, "part-l-1", &second).await;
    raw.run_once().await.unwrap();
    let b = profiled.run_once().await.unwrap();
    assert_eq!(b.windows, vec![START, START + HOUR], "the windows of the labeled predictions");
    assert_same_labels(&raw_store, &profiled_store, "relabels").await;

    // A crash after the label state was written and before the run's state was: a restarted
    // monitor folds the same labels again, and analyses the same windows again.
    profiled_store.put(&state_path, saved).await.unwrap();
    let (_, profiled) = monitor(_dirs[1].path(), true, 3650).await;
    let again = profiled.run_once().await.unwrap();
    assert_eq!(again.windows, b.windows);
    assert_same_labels(&raw_store, &profiled_store, "after a crash").await;

    // Predictions whose labels came first: they are labeled as they arrive.
    let late = rows(99, 300, START + HOUR + 17, 1_000_000, 0.3, true);
    put_file(&raw_store, "part-z-1", &late).await;
    put_file(&profiled_store, "part-z-1", &late).await;
    raw.run_once().await.unwrap();
    let b = profiled.run_once().await.unwrap();
    assert_eq!(b.windows, vec![START + HOUR]);
    assert_same_labels(&raw_store, &profiled_store, "labels before their predictions").await;
    let perf = performance(&profiled_store).await;
    assert_eq!(perf[&(START + HOUR, "label_coverage".to_string(), "realized".to_string())].0, 1700);

    // The join state: one file per labeled hour, and the labels still without a prediction.
    assert_eq!(
        label_state(&profiled_store).await,
        ["hour=2026-11-20T00.parquet", "hour=2026-11-20T01.parquet", "pending.parquet"]
    );

    // Profiles turned on over the store analysed from rows, as labels for hour 2 arrive: the
    // state is built from every label file, and only the new file's windows are analysed (the
    // others were joined with the same labels).
    let (_, toggled) = monitor(_dirs[0].path(), true, 3650).await;
    put_labels(&raw_store, "part-l-2", &labels_of(14, 3000, 0..10, 0.0, received)).await;
    assert_eq!(toggled.run_once().await.unwrap().windows, vec![START + 2 * HOUR]);
    let mut expected = label_state(&profiled_store).await;
    expected.insert(2, "hour=2026-11-20T02.parquet".into());
    assert_eq!(label_state(&raw_store).await, expected);

    // Retention deletes hour 0: its label state goes at the next run that folds.
    std::fs::remove_dir_all(_dirs[1].path().join("store/m/predictions/date=2026-11-20/hour=00")).unwrap();
    put_file(&profiled_store, "part-y-2", &rows(98, 100, START + 2 * HOUR + 9, 1_000_000, 0.0, true)).await;
    profiled.run_once().await.unwrap();
    let state = label_state(&profiled_store).await;
    assert!(!state.contains(&"hour=2026-11-20T00.parquet".to_string()), "{state:?}");
    assert!(state.contains(&"hour=2026-11-20T01.parquet".to_string()), "{state:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_is_looked_up_within_the_lookback_before_its_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("reference.parquet"), parquet(&with_label(&rows(1, 5_000, 0, 1, 0.0, false), 2)))
        .unwrap();
    let (store, monitor) = monitor(dir.path(), true, 1).await;
    put_file(&store, "part-a-0", &rows(10, 1000, START, 1_000_000, 0.0, true)).await;
    // Label times 12 hours after the predictions: within the day of lookback. Three days after:
    // not looked up, and, received days ago, not kept waiting either.
    let mut labels = labels_of(10, 1000, 0..100, 0.0, START + 12 * HOUR);
    for l in &mut labels {
        l.2 = START + 12 * HOUR;
    }
    let mut late = labels_of(10, 1000, 100..300, 0.0, START + 72 * HOUR);
    for l in &mut late {
        l.2 = START + 72 * HOUR;
    }
    labels.extend(late);
    put_labels(&store, "part-l-0", &labels).await;
    monitor.run_once().await.unwrap();
    let perf = performance(&store).await;
    assert_eq!(perf[&(START, "label_coverage".to_string(), "realized".to_string())].0, 100, "{perf:?}");
    assert_eq!(label_state(&store).await, ["hour=2026-11-20T00.parquet"]);
}

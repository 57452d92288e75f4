//! Compaction and retention on a local store, with the clock passed in.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;
use object_store::ObjectStore;

use super::*;

const HOUR0: &str = "m/predictions/date=2026-11-20/hour=00";
const HOUR1: &str = "m/predictions/date=2026-11-20/hour=01";
const TABLE: &str = "m/predictions";

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    (dir, store)
}

fn parquet(ids: &[String]) -> Bytes {
    let schema = Arc::new(Schema::new(vec![Field::new("prediction_id", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(ids.to_vec()))]).unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf.into()
}

/// `part-w-<seq>.parquet` in `folder` holding ids `<seq>-0` .. `<seq>-<rows-1>`.
async fn part(store: &Store, folder: &str, seq: u64, rows: usize) -> String {
    let name = crate::layout::file_name("w", seq);
    let ids: Vec<String> = (0..rows).map(|i| format!("{seq}-{i}")).collect();
    store.put(&Path::from(format!("{folder}/{name}")), parquet(&ids)).await.unwrap();
    name
}

async fn read_ids(store: &Store, files: &[ObjectMeta]) -> Vec<String> {
    let mut ids = Vec::new();
    for meta in files {
        let data = store.object_store().get(&meta.location).await.unwrap().bytes().await.unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data).unwrap().build().unwrap();
        for batch in reader {
            ids.extend(batch.unwrap().column(0).as_string::<i32>().iter().map(|v| v.unwrap().to_string()));
        }
    }
    ids.sort();
    ids
}

/// The ids a reader sees under `prefix`, through [`live_files`].
async fn live_ids(store: &Store, prefix: &str) -> Vec<String> {
    let files = live_files(store.object_store().as_ref(), &Path::from(prefix)).await.unwrap();
    read_ids(store, &files).await
}

fn expected(seqs: &[(u64, usize)]) -> Vec<String> {
    let mut ids: Vec<String> = seqs.iter().flat_map(|(s, n)| (0..*n).map(move |i| format!("{s}-{i}"))).collect();
    ids.sort();
    ids
}

async fn names(store: &Store, folder: &str) -> Vec<String> {
    let listed: Vec<ObjectMeta> = store.object_store().list(Some(&Path::from(folder))).try_collect().await.unwrap();
    let mut names: Vec<String> = listed.iter().map(|m| file_name(&m.location).to_string()).collect();
    names.sort();
    names
}

fn config(min_files: usize, grace_secs: u64) -> CompactionConfig {
    CompactionConfig {
        min_files,
        min_age: Duration::ZERO,
        grace: Duration::from_secs(grace_secs),
        ..Default::default()
    }
}

async fn pass(
    store: &Store,
    compaction: Option<&CompactionConfig>,
    retention: &RetentionConfig,
    now: DateTime<Utc>,
) -> PassReport {
    run(store, "m", &Pass { compaction, retention, zstd_level: 3, now }).await.unwrap()
}

fn predictions(r: &PassReport) -> &TableReport {
    &r.tables[0]
}

#[test]
fn resolve_follows_chains() {
    let m = |output: &str, sources: &[&str]| Manifest {
        output: output.into(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        created: String::new(),
    };
    let first = m("compact-1.parquet", &["a.parquet", "b.parquet"]);
    let second = m("compact-2.parquet", &["compact-1.parquet", "c.parquet"]);
    let stale = m("compact-3.parquet", &["d.parquet"]);
    // Only the second output is listed (the first was deleted as its source): both are effective.
    let data: HashSet<&str> = ["compact-2.parquet", "a.parquet", "d.parquet"].into_iter().collect();
    let (effective, excluded) = resolve(&data, &[&first, &stale, &second]);
    assert_eq!(effective, [true, false, true]);
    let mut excluded: Vec<&str> = excluded.into_iter().collect();
    excluded.sort();
    assert_eq!(excluded, ["a.parquet", "b.parquet", "c.parquet", "compact-1.parquet"]);
}

#[test]
fn partition_ends() {
    let t = |y, mo, d, h| Some(Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap());
    assert_eq!(partition_end("predictions", &["date=2026-11-20", "hour=23"]), t(2026, 11, 21, 0));
    assert_eq!(partition_end("labels", &["date=2026-11-20"]), t(2026, 11, 21, 0));
    assert_eq!(partition_end("predictions", &["date=2026-11-20"]), None);
    assert_eq!(partition_end("predictions", &["date=2026-11-20", "hour=24"]), None);
    assert_eq!(partition_end("labels", &["date=20261120"]), None);
}

#[tokio::test]
async fn live_files_hide_sources_once_the_output_exists() {
    let (_dir, store) = open();
    for seq in 1..=3 {
        part(&store, HOUR0, seq, 10).await;
    }
    part(&store, HOUR1, 4, 5).await;
    let all = expected(&[(1, 10), (2, 10), (3, 10), (4, 5)]);
    assert_eq!(live_ids(&store, TABLE).await, all);

    // Hour 1 has too few files; hour 0 is compacted, its sources kept for the grace (1 h).
    let now = Utc::now() + chrono::Duration::minutes(1);
    let r = pass(&store, Some(&config(2, 3600)), &RetentionConfig::default(), now).await;
    let p = predictions(&r);
    assert_eq!((p.partitions_compacted, p.files_merged, p.rows_merged, p.sources_deleted), (1, 3, 30, 0));
    assert!(p.bytes_before > 0 && p.bytes_after > 0);
    let in_hour0 = names(&store, HOUR0).await;
    assert_eq!(in_hour0.len(), 5, "{in_hour0:?}");
    assert!(
        in_hour0.iter().any(|n| n.starts_with(MANIFEST_PREFIX))
            && in_hour0.iter().any(|n| n.starts_with(OUTPUT_PREFIX))
    );

    // Crash-safe reading while sources and output coexist: every row once, at any prefix.
    assert_eq!(live_ids(&store, TABLE).await, all);
    assert_eq!(live_ids(&store, HOUR0).await, expected(&[(1, 10), (2, 10), (3, 10)]));
    let live = live_files(store.object_store().as_ref(), &Path::from(HOUR0)).await.unwrap();
    assert_eq!(live.len(), 1);
    assert!(file_name(&live[0].location).starts_with(OUTPUT_PREFIX));

    // The wrapper's listings agree, recursive and per folder.
    let wrapped = store.live_object_store();
    let listed: Vec<ObjectMeta> = wrapped.list(Some(&Path::from(TABLE))).try_collect().await.unwrap();
    let data: Vec<ObjectMeta> = listed.into_iter().filter(|m| is_data_file(file_name(&m.location))).collect();
    assert_eq!(read_ids(&store, &data).await, all);
    let folder = wrapped.list_with_delimiter(Some(&Path::from(HOUR0))).await.unwrap();
    let data: Vec<ObjectMeta> = folder.objects.into_iter().filter(|m| is_data_file(file_name(&m.location))).collect();
    assert_eq!(data.len(), 1);
    let offset: Vec<ObjectMeta> = wrapped
        .list_with_offset(Some(&Path::from(TABLE)), &Path::from(format!("{HOUR0}/compact-")))
        .try_collect()
        .await
        .unwrap();
    assert!(
        offset.iter().all(|m| !file_name(&m.location).starts_with("part-") || m.location.as_ref().starts_with(HOUR1))
    );

    // Before the grace nothing is deleted; after it, the sources go and the manifest stays.
    let r =
        pass(&store, Some(&config(2, 3600)), &RetentionConfig::default(), now + chrono::Duration::minutes(30)).await;
    assert_eq!(predictions(&r).sources_deleted, 0);
    let r = pass(&store, Some(&config(2, 3600)), &RetentionConfig::default(), now + chrono::Duration::hours(2)).await;
    assert_eq!((predictions(&r).sources_deleted, predictions(&r).partitions_compacted), (3, 0));
    let in_hour0 = names(&store, HOUR0).await;
    assert_eq!(in_hour0.len(), 2, "{in_hour0:?}");
    assert_eq!(live_ids(&store, TABLE).await, all);
}

#[tokio::test]
async fn a_manifest_without_output_is_not_effective_and_is_deleted_after_the_grace() {
    let (_dir, store) = open();
    let a = part(&store, HOUR0, 1, 3).await;
    let b = part(&store, HOUR0, 2, 3).await;
    let now = Utc::now();
    // What a crash between the manifest and the output leaves.
    let manifest = Manifest {
        output: "compact-0190000000007000800000000000000a.parquet".into(),
        sources: vec![a.clone(), b.clone()],
        created: now.to_rfc3339(),
    };
    let path = Path::from(format!("{HOUR0}/_compaction-0190000000007000800000000000000a.json"));
    store.put(&path, serde_json::to_vec(&manifest).unwrap().into()).await.unwrap();
    assert_eq!(live_ids(&store, TABLE).await, expected(&[(1, 3), (2, 3)]));

    // Too few files to compact (min_files 3); within the grace the manifest stays.
    let r = pass(&store, Some(&config(3, 600)), &RetentionConfig::default(), now + chrono::Duration::minutes(5)).await;
    assert_eq!(predictions(&r).stale_manifests_deleted, 0);
    assert_eq!(names(&store, HOUR0).await.len(), 3);
    let r = pass(&store, Some(&config(3, 600)), &RetentionConfig::default(), now + chrono::Duration::minutes(11)).await;
    assert_eq!(predictions(&r).stale_manifests_deleted, 1);
    assert_eq!(names(&store, HOUR0).await, [a, b]);
    assert_eq!(live_ids(&store, TABLE).await, expected(&[(1, 3), (2, 3)]));
}

#[tokio::test]
async fn sources_and_their_profiles_go_and_a_replayed_source_stays_excluded() {
    let (_dir, store) = open();
    let mut sources = Vec::new();
    for seq in 1..=3 {
        sources.push(part(&store, HOUR0, seq, 4).await);
    }
    let profile = Path::from(format!("{HOUR0}/{}", profile_name(&sources[0])));
    store.put(&profile, Bytes::from_static(b"{}")).await.unwrap();
    let now = Utc::now() + chrono::Duration::minutes(1);
    pass(&store, Some(&config(3, 0)), &RetentionConfig::default(), now).await;
    // Grace 0: the next pass deletes the sources and the profile of the first.
    let r = pass(&store, Some(&config(3, 0)), &RetentionConfig::default(), now).await;
    assert_eq!(predictions(&r).sources_deleted, 3);
    let left = names(&store, HOUR0).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|n| n.starts_with(MANIFEST_PREFIX) || n.starts_with(OUTPUT_PREFIX)));

    // A collector replays its WAL after a crash: the same name, the same rows, much later.
    let again = part(&store, HOUR0, 2, 4).await;
    assert_eq!(again, sources[1]);
    assert_eq!(live_ids(&store, TABLE).await, expected(&[(1, 4), (2, 4), (3, 4)]));
    let r = pass(&store, Some(&config(3, 0)), &RetentionConfig::default(), now).await;
    assert_eq!((predictions(&r).sources_deleted, predictions(&r).partitions_compacted), (1, 0));
    assert_eq!(names(&store, HOUR0).await.len(), 2);
}

#[tokio::test]
async fn compacting_an_output_again_keeps_every_row_once() {
    let (_dir, store) = open();
    for seq in 1..=3 {
        part(&store, HOUR0, seq, 2).await;
    }
    let now = Utc::now() + chrono::Duration::minutes(1);
    let long = config(3, 3600);
    let r = pass(&store, Some(&long), &RetentionConfig::default(), now).await;
    assert_eq!(predictions(&r).files_merged, 3);
    // Late rows arrive; the first output and the two new files are merged again.
    part(&store, HOUR0, 4, 2).await;
    part(&store, HOUR0, 5, 2).await;
    let r = pass(&store, Some(&long), &RetentionConfig::default(), now + chrono::Duration::minutes(2)).await;
    assert_eq!((predictions(&r).files_merged, predictions(&r).rows_merged), (3, 10));
    let all = expected(&[(1, 2), (2, 2), (3, 2), (4, 2), (5, 2)]);
    assert_eq!(live_ids(&store, TABLE).await, all);
    assert_eq!(live_files(store.object_store().as_ref(), &Path::from(TABLE)).await.unwrap().len(), 1);

    // After the grace every source goes, the first output too; the first manifest is still
    // effective through the second, so a replayed first-generation file stays excluded.
    let r = pass(&store, Some(&long), &RetentionConfig::default(), now + chrono::Duration::hours(2)).await;
    assert_eq!(predictions(&r).sources_deleted, 6);
    assert_eq!(names(&store, HOUR0).await.len(), 3);
    part(&store, HOUR0, 1, 2).await;
    assert_eq!(live_ids(&store, TABLE).await, all);
}

#[tokio::test]
async fn retention_deletes_only_expired_partitions() {
    let (_dir, store) = open();
    let compaction = config(2, 3600);
    // Hour 0 is compacted first, so it holds a manifest, an output, sources and a profile.
    for seq in 1..=2 {
        part(&store, HOUR0, seq, 1).await;
    }
    pass(&store, Some(&compaction), &RetentionConfig::default(), Utc::now() + chrono::Duration::minutes(1)).await;
    for seq in 1..=2 {
        part(&store, HOUR1, 10 + seq, 1).await;
        part(&store, "m/labels/date=2026-11-19", 20 + seq, 1).await;
        part(&store, "m/labels/date=2026-11-20", 30 + seq, 1).await;
    }
    let hour1_end = Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap();
    store.put(&Path::from(format!("{HOUR0}/_profile-x.json")), Bytes::from_static(b"{}")).await.unwrap();
    for (start, name) in [(hour1_end - chrono::Duration::hours(30), "old"), (hour1_end, "new")] {
        let path = format!("m/results/drift/window-{:020}.parquet", start.timestamp_micros());
        store.put(&Path::from(path), Bytes::from(name)).await.unwrap();
    }
    store.put(&Path::from("m/results/drift/rolling.parquet"), Bytes::from_static(b"r")).await.unwrap();

    // One day after hour 0 ended, before hour 1 did: hour 0 and the labels of the 19th go.
    let retention = RetentionConfig {
        predictions: Some(Duration::from_secs(86_400)),
        labels: Some(Duration::from_secs(86_400)),
        results: Some(Duration::from_secs(86_400)),
    };
    let now = hour1_end + chrono::Duration::days(1) - chrono::Duration::minutes(30);
    let r = pass(&store, None, &retention, now).await;
    assert_eq!((r.tables[0].partitions_deleted, r.tables[0].files_deleted), (1, 4));
    assert_eq!((r.tables[1].partitions_deleted, r.tables[1].files_deleted), (1, 2));
    assert_eq!((r.tables[2].table.as_str(), r.tables[2].files_deleted), ("drift", 1));
    // The manifest outlives the data by one pass.
    assert_eq!(names(&store, HOUR0).await.len(), 1);
    assert_eq!(live_ids(&store, TABLE).await, expected(&[(11, 1), (12, 1)]));
    assert_eq!(live_ids(&store, "m/labels").await, expected(&[(31, 1), (32, 1)]));
    let r = pass(&store, None, &retention, now).await;
    assert_eq!((r.tables[0].partitions_deleted, r.tables[0].files_deleted), (0, 1));
    assert!(names(&store, HOUR0).await.is_empty());
    assert_eq!(names(&store, HOUR1).await.len(), 2);
    let results = names(&store, "m/results").await;
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.contains(&"rolling.parquet".to_string()));

    // Without retention nothing is deleted.
    let r = pass(&store, None, &RetentionConfig::default(), now + chrono::Duration::days(1000)).await;
    assert!(r.tables.iter().all(|t| !t.changed()), "{r:?}");
}

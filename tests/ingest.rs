//! End to end: predictions and labels in every format go in over HTTP, and come back out exactly,
//! through `/v1/query` and straight from the Parquet files.

use crate::support;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};
use support::{Server, config, ipc, read_parquet};

const ARROW: &str = "application/vnd.apache.arrow.stream";

/// 1000 predictions `a-0` … `a-999`, one second apart from 2026-11-21T00:00:00Z, with a naive
/// millisecond timestamp, integer ages and a Float32 score, to exercise the coercions.
fn arrow_predictions() -> RecordBatch {
    let n = 1000;
    let start_ms = 1_795_219_200_000i64; // 2026-11-21T00:00:00Z
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("prediction_id", Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("a-{i}"))))),
        ("timestamp", Arc::new(TimestampMillisecondArray::from_iter_values((0..n).map(|i| start_ms + i * 1000)))),
        ("age", Arc::new(Int64Array::from_iter_values(0..n))),
        ("region", Arc::new(StringArray::from_iter_values((0..n).map(|i| ["north", "south"][i as usize % 2])))),
        ("vip", Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 3 == 0))))),
        (
            "prediction",
            Arc::new(StringArray::from_iter_values((0..n).map(|i| if i % 4 == 0 { "bad" } else { "good" }))),
        ),
        ("score_good", Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64 / 1000.0)))),
        ("score_bad", Arc::new(Float32Array::from_iter_values((0..n).map(|i| 1.0 - i as f32 / 1000.0)))),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

fn one(sql: &str, server: &Server) -> Value {
    let rows = server.query(sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0].as_object().unwrap().values().next().unwrap().clone()
}

#[test]
fn every_format_lands_in_parquet_and_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), ""));

    // One JSON object, with its own id and time.
    let first = json!({
        "prediction_id": "p-1", "timestamp": "2026-11-20T10:15:00Z", "model_version": "v1",
        "features": {"age": 30, "region": "north", "vip": true},
        "prediction": "good", "scores": {"good": 0.9, "bad": 0.1}
    });
    let r = support::client().post(server.url("/v1/models/credit/predictions")).json(&first).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-prediction-id"], "p-1");
    assert_eq!(r.json::<Value>().unwrap(), json!({"accepted": 1, "prediction_ids": ["p-1"]}));

    // A JSON array without ids or times: ids are generated UUIDv7s, returned in order.
    let unnamed = json!([
        {"features": {"age": 41.5, "region": "south", "vip": false}, "prediction": "bad", "scores": [0.3, 0.7]},
        {"features": {"age": null, "region": 7, "vip": 0}, "prediction": "good"},
        {"features": {"vip": 1}, "prediction": "good"},
    ]);
    let (status, answer) = server.post_json("/v1/models/credit/predictions", &unnamed);
    assert_eq!(status, 200, "{answer}");
    let generated: Vec<String> =
        answer["prediction_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(generated.len(), 3);
    for id in &generated {
        let uuid = uuid::Uuid::parse_str(id).unwrap();
        assert_eq!(uuid.get_version_num(), 7, "{id} is not a UUIDv7");
    }

    // NDJSON, with Unix-seconds timestamps.
    let ndjson = "{\"prediction_id\":\"p-2\",\"timestamp\":1795000000,\"features\":{\"age\":22,\"region\":\"east\",\"vip\":false},\"prediction\":\"bad\"}\n\
                  {\"prediction_id\":\"p-3\",\"timestamp\":1795000000.5,\"features\":{\"age\":23,\"region\":\"east\",\"vip\":true},\"prediction\":\"good\"}\n";
    let (status, answer) = server.post("/v1/models/credit/predictions", "application/x-ndjson", ndjson);
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(2)), "{answer}");

    // Arrow IPC, 1000 rows.
    let (status, answer) = server.post("/v1/models/credit/predictions", ARROW, ipc(&arrow_predictions()));
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1000)), "{answer}");
    assert_eq!(answer["prediction_ids"][999], "a-999");

    // Labels: p-1 twice (the later one wins), p-2 as NDJSON, a-0..a-499 as Arrow.
    for label in ["bad", "good"] {
        let (status, answer) =
            server.post_json("/v1/models/credit/labels", &json!({"prediction_id": "p-1", "label": label}));
        assert_eq!(status, 200, "{answer}");
    }
    // Two labels for one prediction in one request: the later record wins.
    let (status, _) = server.post_json(
        "/v1/models/credit/labels",
        &json!([{"prediction_id": "p-3", "label": "bad"}, {"prediction_id": "p-3", "label": "good"}]),
    );
    assert_eq!(status, 200);
    let (status, _) = server.post(
        "/v1/models/credit/labels",
        "application/x-ndjson",
        "{\"prediction_id\":\"p-2\",\"label\":\"bad\",\"timestamp\":\"2026-11-22T08:00:00Z\"}\n",
    );
    assert_eq!(status, 200);
    let labels = RecordBatch::try_from_iter([
        ("prediction_id", Arc::new(StringArray::from_iter_values((0..500).map(|i| format!("a-{i}")))) as ArrayRef),
        ("label", Arc::new(StringArray::from_iter_values((0..500).map(|i| if i % 2 == 0 { "bad" } else { "good" })))),
    ])
    .unwrap();
    let (status, answer) = server.post("/v1/models/credit/labels", ARROW, ipc(&labels));
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(500)), "{answer}");

    server.flush();

    // Through SQL.
    assert_eq!(one("SELECT count(*) FROM predictions", &server), 1006);
    assert_eq!(one("SELECT count(*) FROM labels", &server), 505);
    assert_eq!(one("SELECT label FROM labels_latest WHERE prediction_id = 'p-3'", &server), "good");
    assert_eq!(one("SELECT label FROM labels_latest WHERE prediction_id = 'p-1'", &server), "good");
    assert_eq!(one("SELECT count(label) FROM predictions_labeled", &server), 503);
    assert_eq!(one("SELECT sum(age) FROM predictions WHERE prediction_id LIKE 'a-%'", &server), 499500.0);
    assert_eq!(
        one("SELECT count(*) FROM predictions_labeled WHERE prediction_id LIKE 'a-%' AND label = prediction", &server),
        375
    );
    let p1 = &server.query("SELECT * FROM predictions WHERE prediction_id = 'p-1'")[0];
    assert_eq!(
        (&p1["age"], &p1["region"], &p1["vip"], &p1["model_version"]),
        (&json!(30.0), &json!("north"), &json!(true), &json!("v1"))
    );
    assert_eq!(
        (&p1["score_good"], &p1["score_bad"], &p1["date"], &p1["hour"]),
        (&json!(0.9), &json!(0.1), &json!("2026-11-20"), &json!("10"))
    );
    let coerced =
        server.query(&format!("SELECT region, vip, age FROM predictions WHERE prediction_id = '{}'", generated[1]));
    assert_eq!(coerced[0], json!({"region": "7", "vip": false}), "null age is left out of the JSON row");
    let hours = server.query("SELECT date, hour, count(*) AS n FROM predictions WHERE prediction_id LIKE 'a-%' GROUP BY date, hour ORDER BY date, hour");
    assert_eq!(hours, vec![json!({"date": "2026-11-21", "hour": "00", "n": 1000})]);

    // Straight from the files, with the parquet crate, in the hive layout.
    let store = dir.path().join("store/credit");
    assert!(store.join("predictions/date=2026-11-20/hour=10").is_dir());
    assert!(store.join("predictions/date=2026-11-21/hour=00").is_dir());
    let batches = read_parquet(&store.join("predictions"));
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1006);
    let mut found = 0;
    for b in &batches {
        let ids = b.column_by_name("prediction_id").unwrap().as_string::<i32>();
        let ages = b.column_by_name("age").unwrap().as_primitive::<Float64Type>();
        let times = b.column_by_name("timestamp").unwrap().as_primitive::<TimestampMicrosecondType>();
        let scores = b.column_by_name("score_bad").unwrap().as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            if let Some(n) = ids.value(i).strip_prefix("a-") {
                let n: i64 = n.parse().unwrap();
                assert_eq!(ages.value(i), n as f64);
                assert_eq!(times.value(i), (1_795_219_200 + n) * 1_000_000);
                assert_eq!(scores.value(i), (1.0 - n as f32 / 1000.0) as f64);
                found += 1;
            }
            if ids.value(i) == "p-3" {
                assert_eq!(times.value(i), 1_795_000_000_500_000);
            }
        }
    }
    assert_eq!(found, 1000);
    assert_eq!(read_parquet(&store.join("labels")).iter().map(RecordBatch::num_rows).sum::<usize>(), 505);

    let metrics = server.metrics();
    assert!(
        metrics.contains("anchorwatch_ingest_rows_total{model=\"credit\",table=\"predictions\"} 1006"),
        "{metrics}"
    );
    assert!(metrics.contains("anchorwatch_ingest_rows_total{model=\"credit\",table=\"labels\"} 505"), "{metrics}");

    // A graceful stop writes what is still in the WAL.
    let (status, _) = server.post_json(
        "/v1/models/credit/predictions",
        &Value::Array(vec![json!({"features": {"vip": true}, "prediction": "good"}); 5]),
    );
    assert_eq!(status, 200);
    server.stop();
    assert_eq!(read_parquet(&store.join("predictions")).iter().map(RecordBatch::num_rows).sum::<usize>(), 1011);
    for entry in std::fs::read_dir(store.join("wal")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wal") {
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "{} still holds unflushed rows", path.display());
        }
    }
}

#[test]
fn read_only_sql_refuses_writes_and_reports_bad_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), ""));
    for (sql, status, code) in [
        ("CREATE TABLE t AS SELECT 1", 403, "read_only"),
        ("INSERT INTO predictions SELECT * FROM predictions", 403, "read_only"),
        ("COPY (SELECT 1) TO '/tmp/anchorwatch-should-not-exist.csv'", 403, "read_only"),
        ("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'", 403, "read_only"),
        ("SELECT nope FROM predictions", 400, "invalid_query"),
        ("SELEC 1", 400, "invalid_query"),
    ] {
        let (got, answer) = server.post_json("/v1/query", &json!({"model": "credit", "sql": sql}));
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{sql}: {answer}");
    }
    assert!(!std::path::Path::new("/tmp/anchorwatch-should-not-exist.csv").exists());
    let (got, answer) = server.post_json("/v1/query", &json!({"model": "nope", "sql": "SELECT 1"}));
    assert_eq!((got, answer["error"]["code"].as_str()), (404, Some("unknown_model")));
    // An empty store is a valid, empty dataset.
    assert_eq!(server.query("SELECT count(*) AS n FROM predictions_labeled"), vec![json!({"n": 0})]);
}

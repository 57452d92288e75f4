//! The built-in predictor and the model registry, end to end: real ONNX Runtime, real models made
//! at test time by scikit-learn and skl2onnx (tests/fixtures/make_models.py), the real binary.
//!
//! Needs the project's `.venv` (`make test` installs it). Without it the test prints a skip,
//! except with `CI=true`, where a missing Python or ONNX Runtime is a failure.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use support::{Server, client};

const CONFIG: &str = r#"[store]
root = "store"

[collector]
flush_interval = "1s"

[predictor]
pool_size = 2
reload_interval = "1s"

[[models]]
name = "credit"
[models.schema]
prediction = "categorical"
scores = ["bad", "good"]
features = [
  { name = "age", kind = "numerical" },
  { name = "region", kind = "categorical" },
  { name = "vip", kind = "boolean" },
]

[[models]]
name = "price"
[models.schema]
prediction = "numerical"
features = [
  { name = "x1", kind = "numerical" },
  { name = "x2", kind = "numerical" },
]
"#;

fn upload(server: &Server, model: &str, bytes: Vec<u8>) -> (u16, Value) {
    server.post(&format!("/v1/models/{model}/versions"), "application/octet-stream", bytes)
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    let r = client().get(server.url(path)).send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5
}

/// Checks /v1 predict answers against what Python's ONNX Runtime said for `expected[name]`.
fn check_predict(answer: &Value, expected: &Value, name: &str) {
    let rows = answer["predictions"].as_array().unwrap();
    let want = &expected[name];
    assert_eq!(rows.len(), want["label"].as_array().unwrap().len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["prediction"], want["label"][i], "{name} row {i}");
        for (c, class) in ["bad", "good"].iter().enumerate() {
            let got = row["scores"][class].as_f64().unwrap();
            let w = want["probabilities"][i][c].as_f64().unwrap();
            assert!(close(got, w), "{name} row {i} {class}: {got} vs {w}");
        }
    }
}

fn records(rows: &Value) -> Value {
    Value::Array(rows.as_array().unwrap().iter().map(|r| json!({"features": r})).collect())
}

#[test]
fn serves_promotes_and_rolls_back_onnx_models() {
    let dir = tempfile::tempdir().unwrap();
    let Some(models) = support::make_models(dir.path()) else { return };
    let file = |name: &str| std::fs::read(models.join(format!("{name}.onnx"))).unwrap();
    let expected: Value = serde_json::from_slice(&std::fs::read(models.join("expected.json")).unwrap()).unwrap();
    let config = dir.path().join("anchorwatch.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Server::start(&config);

    // No champion yet.
    assert_eq!(get(&server, "/v2/models/credit/ready").0, 503);
    let (status, answer) = server.post_json("/v1/models/credit/predict", &json!({"features": {"vip": true}}));
    assert_eq!((status, answer["error"]["code"].as_str()), (503, Some("no_champion")), "{answer}");

    // Upload and promote v1.
    let (status, v1) = upload(&server, "credit", file("credit_v1"));
    assert_eq!(status, 201, "{v1}");
    assert_eq!((v1["version"].as_u64(), v1["status"].as_str()), (Some(1), Some("candidate")));
    assert_eq!(v1["sha256"].as_str().unwrap().len(), 64);
    let (status, answer) = server.post_json("/v1/models/credit/versions/1/promote", &json!({}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(get(&server, "/v2/models/credit/ready").0, 200);
    assert_eq!(get(&server, "/v2/health/ready").0, 200);

    // /v1 predict, batched: the same numbers as Python's ONNX Runtime.
    let (status, batch) = server.post_json("/v1/models/credit/predict", &records(&expected["credit_rows"]));
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["model_version"], "v1");
    check_predict(&batch, &expected, "credit_v1");
    let mut ids: Vec<String> =
        batch["predictions"].as_array().unwrap().iter().map(|r| r["prediction_id"].as_str().unwrap().into()).collect();

    // A single record: the id in the body and the header.
    let r = client()
        .post(server.url("/v1/models/credit/predict"))
        .json(&json!({"features": expected["credit_rows"][0]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let header = r.headers().get("x-prediction-id").unwrap().to_str().unwrap().to_string();
    let one: Value = r.json().unwrap();
    assert_eq!(one["prediction_id"].as_str(), Some(header.as_str()));
    assert_eq!(one["prediction"], expected["credit_v1"]["label"][0]);
    ids.push(header);

    // Open Inference Protocol v2, inputs by feature name.
    let rows = expected["credit_rows"].as_array().unwrap();
    let n = rows.len();
    let column = |f: &str| Value::Array(rows.iter().map(|r| r[f].clone()).collect());
    let (status, oip) = server.post_json(
        "/v2/models/credit/infer",
        &json!({"id": "req-1", "inputs": [
            {"name": "age", "shape": [n, 1], "datatype": "FP32", "data": column("age")},
            {"name": "region", "shape": [n], "datatype": "BYTES", "data": column("region")},
            {"name": "vip", "shape": [n], "datatype": "BOOL", "data": column("vip")},
        ]}),
    );
    assert_eq!(status, 200, "{oip}");
    assert_eq!((oip["id"].as_str(), oip["model_version"].as_str()), (Some("req-1"), Some("v1")));
    let outputs = oip["outputs"].as_array().unwrap();
    let label = outputs.iter().find(|o| o["name"] == "label").unwrap();
    assert_eq!(label["data"], expected["credit_v1"]["label"]);
    let proba = outputs.iter().find(|o| o["name"] == "probabilities").unwrap();
    let want: Vec<f64> = expected["credit_v1"]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .map(|v| v.as_f64().unwrap())
        .collect();
    let got: Vec<f64> = proba["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(got.len(), want.len());
    assert!(got.iter().zip(&want).all(|(a, b)| close(*a, *b)), "probabilities differ");
    ids.extend(oip["parameters"]["prediction_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));

    // A regressor with one [N, F] input.
    let (status, p1) = upload(&server, "price", file("price_v1"));
    assert_eq!(status, 201, "{p1}");
    assert_eq!(server.post_json("/v1/models/price/versions/v1/promote", &json!({})).0, 200);
    let prow = expected["price_rows"].as_array().unwrap();
    let flat: Vec<Value> = prow.iter().flat_map(|r| [r["x1"].clone(), r["x2"].clone()]).collect();
    let (status, oip) = server.post_json(
        "/v2/models/price/infer",
        &json!({"inputs": [{"name": "X", "shape": [prow.len(), 2], "datatype": "FP32", "data": flat}]}),
    );
    assert_eq!(status, 200, "{oip}");
    let variable: Vec<f64> =
        oip["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let want: Vec<f64> =
        expected["price_v1"]["variable"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(variable.iter().zip(&want).all(|(a, b)| close(*a, *b)) && variable.len() == want.len(), "{variable:?}");
    let (status, answer) = server.post_json("/v1/models/price/predict", &records(&expected["price_rows"]));
    assert_eq!(status, 200, "{answer}");
    assert!(close(answer["predictions"][3]["prediction"].as_f64().unwrap(), want[3]));

    // Bad input: row, field, expected, got.
    let (status, e) = server.post_json(
        "/v1/models/credit/predict",
        &json!([{"features": {"vip": true}}, {"features": {"age": "old", "vip": true}}]),
    );
    assert_eq!(status, 400);
    assert_eq!(e["error"]["code"], "wrong_type");
    assert_eq!(
        (e["error"]["details"]["row"].as_u64(), e["error"]["details"]["field"].as_str()),
        (Some(1), Some("features.age"))
    );

    // Missing features are answered (the model sees NaN) and stored as nulls.
    let (status, sparse) = server.post_json("/v1/models/credit/predict", &json!({"features": {"vip": true}}));
    assert_eq!(status, 200, "{sparse}");
    let sparse_id = sparse["prediction_id"].as_str().unwrap().to_string();
    ids.push(sparse_id.clone());

    // Every answered row is captured with its id, and the features as sent.
    server.flush();
    let stored = server.query("SELECT prediction_id, age, region, vip FROM predictions");
    let by_id: std::collections::HashMap<&str, &Value> =
        stored.iter().map(|r| (r["prediction_id"].as_str().unwrap(), r)).collect();
    for (id, sent) in ids.iter().zip(expected["credit_rows"].as_array().unwrap()) {
        let row = by_id.get(id.as_str()).unwrap_or_else(|| panic!("{id} not stored"));
        assert!(close(row["age"].as_f64().unwrap(), sent["age"].as_f64().unwrap()), "{row} vs {sent}");
        assert_eq!((&row["region"], &row["vip"]), (&sent["region"], &sent["vip"]), "{row} vs {sent}");
    }
    let row = by_id[sparse_id.as_str()];
    assert_eq!((&row["age"], &row["region"], &row["vip"]), (&Value::Null, &Value::Null, &json!(true)), "{row}");
    // The regressor's rows too: both price requests (OIP and /v1), every value as answered.
    let (status, prices) = server.post_json(
        "/v1/query",
        &json!({"model": "price", "sql": "SELECT prediction FROM predictions ORDER BY timestamp, prediction_id"}),
    );
    assert_eq!(status, 200, "{prices}");
    let mut stored: Vec<f64> =
        prices["rows"].as_array().unwrap().iter().map(|r| r["prediction"].as_f64().unwrap()).collect();
    let mut answered: Vec<f64> = want.iter().chain(&want).copied().collect();
    stored.sort_by(f64::total_cmp);
    answered.sort_by(f64::total_cmp);
    assert_eq!(stored.len(), answered.len(), "captured price rows");
    assert!(stored.iter().zip(&answered).all(|(a, b)| close(*a, *b)), "{stored:?} vs {answered:?}");
    let stored = server.query("SELECT prediction_id, prediction, model_version, score_good FROM predictions");
    assert_eq!(stored.len(), ids.len(), "captured rows");
    let stored_ids: std::collections::HashSet<&str> =
        stored.iter().map(|r| r["prediction_id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| stored_ids.contains(id.as_str())), "a returned id is not in the store");
    assert!(stored.iter().all(|r| r["model_version"] == "v1"));
    let first = stored.iter().find(|r| r["prediction_id"] == ids[0].as_str()).unwrap();
    assert_eq!(first["prediction"], expected["credit_v1"]["label"][0]);
    assert!(close(
        first["score_good"].as_f64().unwrap(),
        expected["credit_v1"]["probabilities"][0][1].as_f64().unwrap()
    ));

    // Promote v2 while requests run: every request succeeds, on v1 or v2.
    let (status, v2) = upload(&server, "credit", file("credit_v2"));
    assert_eq!((status, v2["version"].as_u64(), v2["parent"].as_u64()), (201, Some(2), Some(1)), "{v2}");
    let stop = Arc::new(AtomicBool::new(false));
    let body = records(&expected["credit_rows"]);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, body, url) = (stop.clone(), body.clone(), server.url("/v1/models/credit/predict"));
            std::thread::spawn(move || {
                let mut answered = Vec::new();
                while !stop.load(Ordering::Relaxed) || answered.len() < 3 {
                    let r = client().post(&url).json(&body).send().unwrap();
                    let status = r.status().as_u16();
                    let v: Value = r.json().unwrap();
                    assert_eq!(status, 200, "{v}");
                    answered.push(v["model_version"].as_str().unwrap().to_string());
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(server.post_json("/v1/models/credit/versions/2/promote", &json!({})).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.join().expect("a request failed during the promotion"));
    }
    assert!(seen.iter().all(|v| v == "v1" || v == "v2"), "{seen:?}");
    let (_, batch) = server.post_json("/v1/models/credit/predict", &body);
    assert_eq!(batch["model_version"], "v2");
    check_predict(&batch, &expected, "credit_v2");
    let (_, versions) = get(&server, "/v1/models/credit/versions");
    let statuses: Vec<&str> =
        versions["versions"].as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["retired", "champion"], "{versions}");

    // Rollback: v1 serves again.
    let (status, answer) = server.post_json("/v1/models/credit/rollback", &json!({}));
    assert_eq!((status, answer["champion"]["version"].as_u64()), (200, Some(1)), "{answer}");
    let (_, batch) = server.post_json("/v1/models/credit/predict", &body);
    check_predict(&batch, &expected, "credit_v1");
    let (status, answer) = server.post_json("/v1/models/credit/rollback", &json!({}));
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("no_previous_champion")));

    // Mismatched uploads are refused and change nothing.
    let store = dir.path().join("store");
    let listing = |model: &str| {
        let mut files: Vec<(PathBuf, Vec<u8>)> = walk(&store.join(model).join("models"));
        files.sort();
        files
    };
    let before = (listing("credit"), listing("price"));
    for (model, bytes, must_say) in [
        ("credit", file("credit_wrong_input"), vec!["`age`", "age_years"]),
        ("price", file("price_wrong_count"), vec!["[N, 2]", "[N, 3]"]),
        ("credit", b"definitely not an onnx file".to_vec(), vec!["ONNX Runtime cannot load"]),
        ("price", file("credit_v1"), vec!["x1"]),
    ] {
        let (status, e) = upload(&server, model, bytes);
        assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_model")), "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        for word in must_say {
            assert!(message.contains(word), "`{message}` does not mention {word}");
        }
    }
    assert_eq!((listing("credit"), listing("price")), before, "a refused upload wrote something");
    let (_, batch) = server.post_json("/v1/models/credit/predict", &body);
    assert_eq!(batch["model_version"], "v1");
    server.stop();
}

fn walk(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            out.push((p, bytes));
        }
    }
    out
}

/// The sum of a counter's samples whose label set contains `labels`.
fn counter(metrics: &str, name: &str, labels: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Rows are captured after the answer, in batches: a graceful stop right after the answers still
/// stores every answered row; a collector that cannot write makes the queue shed rows, counted,
/// while every answer is still a 200; and no row is lost without being counted.
#[test]
fn capture_never_holds_up_an_answer_and_loses_nothing_uncounted() {
    let dir = tempfile::tempdir().unwrap();
    let Some(models) = support::make_models(dir.path()) else { return };
    let v1 = std::fs::read(models.join("credit_v1.onnx")).unwrap();
    let expected: Value = serde_json::from_slice(&std::fs::read(models.join("expected.json")).unwrap()).unwrap();
    let body = records(&expected["credit_rows"]);
    let rows_per_request = expected["credit_rows"].as_array().unwrap().len() as u64;
    // `collector` replaces the collector's settings; `predictor` is added to the predictor's.
    let start = |root: &str, collector: &str, predictor: &str| {
        let config = dir.path().join(format!("{root}.toml"));
        let text = CONFIG
            .replace("root = \"store\"", &format!("root = \"{root}\""))
            .replace("flush_interval = \"1s\"", collector)
            .replace("[predictor]", &format!("[predictor]\n{predictor}"));
        std::fs::write(&config, text).unwrap();
        let server = Server::start(&config);
        assert_eq!(upload(&server, "credit", v1.clone()).0, 201);
        assert_eq!(server.post_json("/v1/models/credit/versions/1/promote", &json!({})).0, 200);
        server
    };

    // A graceful stop at once after the answers: every returned id is in Parquet.
    let server = start("graceful", "flush_interval = \"1s\"", "");
    let url = server.url("/v1/models/credit/predict");
    let sent_from = chrono::Utc::now().timestamp_micros();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for _ in 0..25 {
                    let answer: Value = client().post(&url).json(&body).send().unwrap().json().unwrap();
                    for row in answer["predictions"].as_array().expect("an answer with predictions") {
                        ids.push(row["prediction_id"].as_str().unwrap().to_string());
                    }
                }
                ids
            })
        })
        .collect();
    let answered: Vec<String> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let answered_by = chrono::Utc::now().timestamp_micros();
    assert_eq!(answered.len() as u64, 100 * rows_per_request);
    let log = server.stop();
    // The capture workers let go of the collector, so it shuts down cleanly (no WAL left to replay).
    let unclean: Vec<&String> =
        log.iter().filter(|l| l.contains("still in use") || l.contains("still referenced")).collect();
    assert!(unclean.is_empty(), "the collector did not shut down cleanly: {unclean:?}");
    let mut stored = std::collections::HashSet::new();
    for batch in support::read_parquet(&dir.path().join("graceful/credit/predictions")) {
        use arrow::array::AsArray;
        stored.extend(
            batch.column_by_name("prediction_id").unwrap().as_string::<i32>().iter().flatten().map(str::to_string),
        );
        // Each row's event time is its request's arrival, not the later write.
        let times = batch.column_by_name("timestamp").unwrap();
        for t in times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().iter().flatten() {
            assert!(
                (sent_from..=answered_by).contains(&t),
                "timestamp {t} outside the requests' span {sent_from}..={answered_by}"
            );
        }
    }
    let missing = answered.iter().filter(|id| !stored.contains(*id)).count();
    assert_eq!(missing, 0, "{missing} of {} answered rows are not in Parquet after a graceful stop", answered.len());

    // A store that cannot be written: the collector's backlog reaches max_pending_bytes, the
    // capture worker waits, the queue (room for one request's rows) fills, and rows are dropped
    // and counted.
    let blocker = dir.path().join("stuck/credit/predictions");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, "not a folder").unwrap();
    let server = start(
        "stuck",
        "flush_interval = \"100ms\"\nmax_segment_bytes = \"4KiB\"\nmax_pending_bytes = \"16KiB\"",
        &format!("max_batch_rows = {rows_per_request}\ncapture_queue_rows = {rows_per_request}"),
    );
    let dropped = |reason: &str| {
        counter(
            &server.metrics(),
            "anchorwatch_predictor_capture_dropped_total",
            &format!("model=\"credit\",reason=\"{reason}\""),
        )
    };
    let mut answered_rows = 0;
    support::wait_until(std::time::Duration::from_secs(60), "rows dropped as queue_full", || {
        let (status, answer) = server.post_json("/v1/models/credit/predict", &body);
        assert_eq!(status, 200, "an answer failed while capture could not keep up: {answer}");
        answered_rows += rows_per_request;
        dropped("queue_full") > 0
    });
    // The store comes back: what was queued is written, and flush succeeds.
    std::fs::remove_file(&blocker).unwrap();
    support::wait_until(std::time::Duration::from_secs(60), "a flush once the store is back", || {
        server.post_json("/v1/flush", &json!({})).0 == 200
    });
    let stored = server.query("SELECT count(*) AS n FROM predictions")[0]["n"].as_u64().unwrap();
    let all_dropped = counter(&server.metrics(), "anchorwatch_predictor_capture_dropped_total", "model=\"credit\"");
    assert!(stored > 0, "nothing was stored after the store came back");
    assert_eq!(
        stored + all_dropped,
        answered_rows,
        "stored {stored} + dropped {all_dropped} != answered {answered_rows}"
    );
    server.stop();
}

//! Continuous analysis end to end: a dataset streams in through ingest with drift injected in
//! some features from a known hour, labels follow later, and the windows, the results API and
//! `/metrics` tell the same story. A restart resumes without recomputing old windows.

use crate::support;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use support::Server;
use support::credit::World;

const START: i64 = 1_795_132_800; // 2026-11-20T00:00:00Z
const ROWS_PER_HOUR: usize = 600;

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    World::Uncertain.write_reference(dir, 2000);
    let text = r#"[store]
root = "store"
[collector]
flush_interval = "1h"
[[models]]
name = "credit"
[models.schema]
prediction = "categorical"
scores = ["good", "bad"]
features = [
  { name = "age", kind = "numerical" },
  { name = "region", kind = "categorical" },
  { name = "income", kind = "numerical" },
  { name = "vip", kind = "boolean" },
]
[models.analysis]
reference = "reference.csv"
window = "1h"
interval = "1h"
label_lookback = "3650d"
positive_class = "bad"
thresholds.accuracy = { calibrate = true }
thresholds.label_coverage = { lower = 0.5 }
rolling_rows = 300
"#;
    let path = dir.join("anchorwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn analyze(server: &Server) -> Value {
    let (status, summary) = server.post_json("/v1/models/credit/analyze", &json!({}));
    assert_eq!(status, 200, "{summary}");
    summary
}

fn get(server: &Server, path: &str) -> Value {
    support::client().get(server.url(path)).send().unwrap().json().unwrap()
}

/// window start (hour index) → column → drifted
fn drifted_by_hour(server: &Server) -> Vec<(String, Vec<(String, bool)>)> {
    let drift = get(server, "/v1/models/credit/drift");
    drift["windows"]
        .as_array()
        .unwrap_or_else(|| panic!("no windows: {drift}"))
        .iter()
        .map(|w| {
            let mut cols: Vec<(String, bool)> = w["columns"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["role"] == "feature")
                .map(|c| (c["column"].as_str().unwrap().to_string(), c["drifted"].as_bool().unwrap()))
                .collect();
            cols.sort();
            (w["window_start"].as_str().unwrap().to_string(), cols)
        })
        .collect()
}

fn realized(server: &Server, metric: &str) -> Vec<f64> {
    performance(server, metric, "realized")
}

/// Whether each window's `metric` of `kind` is outside its threshold.
fn breached(server: &Server, metric: &str, kind: &str) -> Vec<bool> {
    let perf = get(server, "/v1/models/credit/performance");
    perf["windows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| {
            w["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == metric && m["kind"] == kind)?["breached"]
                .as_bool()
        })
        .collect()
}

fn performance(server: &Server, metric: &str, kind: &str) -> Vec<f64> {
    let perf = get(server, "/v1/models/credit/performance");
    perf["windows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| {
            w["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == metric && m["kind"] == kind)?["value"]
                .as_f64()
        })
        .collect()
}

#[test]
fn drift_and_decay_are_found_where_injected_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let server = Server::start(&cfg);

    // Four hours of traffic; the world changes at hour 2.
    let mut rng = StdRng::seed_from_u64(2);
    let mut labels = Vec::new();
    for hour in 0..4 {
        let mut records = Vec::new();
        for i in 0..ROWS_PER_HOUR {
            let (mut r, label) = World::Uncertain.applicant(&mut rng, hour >= 2);
            let id = format!("h{hour}-{i}");
            r["prediction_id"] = json!(id);
            r["timestamp"] = json!(START + hour * 3600 + (i as i64 * 5));
            records.push(r);
            labels.push((hour, json!({"prediction_id": id, "label": label})));
        }
        let (status, answer) = server.post_json("/v1/models/credit/predictions", &json!(records));
        assert_eq!(status, 200, "{answer}");
    }
    // Labels of the first two hours arrive; the others are late.
    let early: Vec<&Value> = labels.iter().filter(|(h, _)| *h < 2).map(|(_, l)| l).collect();
    assert_eq!(server.post_json("/v1/models/credit/labels", &json!(early)).0, 200);
    server.flush();
    let summary = analyze(&server);
    assert_eq!(summary["windows"].as_array().unwrap().len(), 4, "{summary}");

    assert_eq!(summary["rolling"], true, "{summary}");
    let by_hour = drifted_by_hour(&server);
    assert_eq!(by_hour.len(), 4);
    let expect_before =
        vec![("age".to_string(), false), ("income".into(), false), ("region".into(), false), ("vip".into(), false)];
    let expect_after =
        vec![("age".to_string(), true), ("income".into(), false), ("region".into(), true), ("vip".into(), false)];
    for (i, (start, cols)) in by_hour.iter().enumerate() {
        assert_eq!(cols, if i < 2 { &expect_before } else { &expect_after }, "window {start}");
    }
    let drift = get(&server, "/v1/models/credit/drift");
    let shares: Vec<f64> =
        drift["windows"].as_array().unwrap().iter().map(|w| w["dataset_drift_share"].as_f64().unwrap()).collect();
    assert_eq!(shares, vec![0.0, 0.0, 0.5, 0.5]);
    // The predictions keep their mix (half the crowd is still under 40): no prediction drift.
    let prediction_drift: Vec<bool> = drift["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["columns"].as_array().unwrap().iter().find(|c| c["role"] == "prediction").unwrap()["drifted"]
                .as_bool()
                .unwrap()
        })
        .collect();
    assert_eq!(prediction_drift, vec![false, false, false, false]);

    // Before any label of the changed hours, the estimate already falls: the model is less sure.
    let estimated = performance(&server, "accuracy", "estimated");
    assert_eq!(estimated.len(), 4, "{estimated:?}");
    assert!(estimated[2].max(estimated[3]) < estimated[0].min(estimated[1]) - 0.08, "estimated accuracy {estimated:?}");
    // The estimate crosses the accuracy threshold calibrated on the reference, labels or not;
    // the coverage threshold flags the hours whose labels are missing.
    assert_eq!(breached(&server, "accuracy", "estimated"), vec![false, false, true, true]);
    assert_eq!(breached(&server, "label_coverage", "realized"), vec![false, false, true, true]);
    // Where the world did not change, the estimate agrees with the labels.
    let before = realized(&server, "accuracy");
    assert_eq!(before.len(), 2, "{before:?}");
    for (e, r) in estimated.iter().zip(&before) {
        assert!((e - r).abs() < 0.05, "estimated {e} vs realized {r}");
    }

    // The rolling window holds the latest 300 rows, all from after the change.
    let rolling = get(&server, "/v1/models/credit/drift?window=rolling");
    let windows = rolling["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{rolling}");
    assert_eq!((windows[0]["window"].as_str(), windows[0]["rows"].as_u64()), (Some("rolling"), Some(300)));
    assert_eq!(windows[0]["window_start"], "2026-11-20T03:25:00Z"); // hour 3, row 300 of 600, 5 s apart
    let drifted: Vec<(&str, bool)> = windows[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "feature")
        .map(|c| (c["column"].as_str().unwrap(), c["drifted"].as_bool().unwrap()))
        .collect();
    assert!(drifted.contains(&("age", true)) && drifted.contains(&("income", false)), "{drifted:?}");
    let bad = support::client().get(server.url("/v1/models/credit/drift?window=sliding")).send().unwrap();
    assert_eq!(bad.status(), 400);

    // Label coverage: full before the change, none after (yet).
    assert_eq!(realized(&server, "label_coverage"), vec![1.0, 1.0, 0.0, 0.0]);

    // /metrics shows the latest window (hour 3) as the results API does.
    let metrics = server.metrics();
    let gauge = |line: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("{line} missing:\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(gauge(r#"anchorwatch_feature_drifted{feature="age",model="credit",stattest="wasserstein"}"#), 1.0);
    assert_eq!(gauge(r#"anchorwatch_feature_drifted{feature="income",model="credit",stattest="wasserstein"}"#), 0.0);
    assert_eq!(gauge(r#"anchorwatch_feature_drifted{feature="region",model="credit",stattest="jensenshannon"}"#), 1.0);
    assert_eq!(gauge(r#"anchorwatch_dataset_drift_share{model="credit"}"#), 0.5);
    assert_eq!(gauge(r#"anchorwatch_label_coverage_ratio{model="credit"}"#), 0.0);
    let last = &drift["windows"][3]["columns"];
    let age_score = last.as_array().unwrap().iter().find(|c| c["column"] == "age").unwrap()["score"].as_f64().unwrap();
    assert_eq!(
        gauge(r#"anchorwatch_feature_drift_score{feature="age",model="credit",stattest="wasserstein"}"#),
        age_score
    );

    // A restart resumes: nothing is recomputed, the results stay.
    server.stop();
    let server = Server::start(&cfg);
    let summary = analyze(&server);
    assert_eq!(
        (&summary["windows"], &summary["rolling"]),
        (&json!([]), &json!(false)),
        "a restart recomputed old windows"
    );
    assert_eq!(drifted_by_hour(&server), by_hour);
    assert!(server.metrics().contains(r#"anchorwatch_dataset_drift_share{model="credit"} 0.5"#));

    // The late labels arrive: only then is target drift known for the changed hours.
    let late: Vec<&Value> = labels.iter().filter(|(h, _)| *h >= 2).map(|(_, l)| l).collect();
    assert_eq!(server.post_json("/v1/models/credit/labels", &json!(late)).0, 200);
    server.flush();
    let summary = analyze(&server);
    assert_eq!(summary["windows"].as_array().unwrap().len(), 4, "late labels recompute the windows in the lookback");
    assert_eq!(realized(&server, "label_coverage"), vec![1.0, 1.0, 1.0, 1.0]);
    let accuracy = realized(&server, "accuracy");
    assert!(accuracy[2].max(accuracy[3]) < accuracy[0].min(accuracy[1]) - 0.3, "realized accuracy {accuracy:?}");
    assert_eq!(breached(&server, "accuracy", "realized"), vec![false, false, true, true]);
    // Once labels are in, the estimate's error is known: small before the change, large after
    // (the relation between features and outcome changed, which no estimate can see).
    let error = performance(&server, "accuracy", "estimate_error");
    assert!(
        error[0].abs() < 0.05 && error[1].abs() < 0.05 && error[2] > 0.3 && error[3] > 0.3,
        "estimate errors {error:?}"
    );
    let m = server.metrics();
    assert!(
        m.contains(r#"anchorwatch_performance_threshold_breached{kind="realized",metric="accuracy",model="credit"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"anchorwatch_model_performance{kind="realized",metric="accuracy",model="credit"}"#), "{m}");
    assert!(m.contains(r#"anchorwatch_performance_decay_ratio{metric="accuracy",model="credit"}"#), "{m}");

    // Late rows for hour 1 only recompute hour 1.
    let late_row = json!({"prediction_id": "late-1", "timestamp": START + 3600 + 10, "features": {"age": 30, "region": "north", "income": 30000, "vip": false}, "prediction": "bad"});
    assert_eq!(server.post_json("/v1/models/credit/predictions", &late_row).0, 200);
    server.flush();
    let summary = analyze(&server);
    assert_eq!(summary["windows"], json!([(START + 3600) * 1_000_000]));
    server.stop();
}

#[test]
fn without_a_reference_file_the_first_span_of_traffic_becomes_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(config(dir.path()))
        .unwrap()
        .replace("reference = \"reference.csv\"\n", "reference_span = \"1h\"\n")
        .replace("rolling_rows = 300\n", "");
    let cfg = dir.path().join("span.toml");
    std::fs::write(&cfg, text).unwrap();
    let server = Server::start(&cfg);
    let mut rng = StdRng::seed_from_u64(3);
    let mut post_hour = |hour: i64, changed: bool| {
        let records: Vec<Value> = (0..ROWS_PER_HOUR)
            .map(|i| {
                let (mut r, _) = World::Uncertain.applicant(&mut rng, changed);
                r["timestamp"] = json!(START + hour * 3600 + i as i64 * 5);
                r
            })
            .collect();
        assert_eq!(server.post_json("/v1/models/credit/predictions", &json!(records)).0, 200);
        server.flush();
    };
    // 50 minutes of traffic do not cover the span yet.
    post_hour(0, false);
    assert_eq!(analyze(&server)["waiting_for_reference"], true);
    post_hour(1, false);
    post_hour(2, true);
    let summary = analyze(&server);
    assert_eq!(summary["waiting_for_reference"], false, "{summary}");
    let by_hour = drifted_by_hour(&server);
    let age: Vec<bool> = by_hour.iter().map(|(_, cols)| cols.iter().find(|(c, _)| c == "age").unwrap().1).collect();
    assert_eq!(age, vec![false, false, true], "{by_hour:?}");
    server.stop();
}

/// Posts rows `range` of `hour` (ids `h<hour>-<i>`, 5 s apart) and flushes them to the store.
fn post_rows(server: &Server, rng: &mut StdRng, hour: i64, range: std::ops::Range<usize>, changed: bool) {
    let records: Vec<Value> = range
        .map(|i| {
            let (mut r, _) = World::Uncertain.applicant(rng, changed);
            r["prediction_id"] = json!(format!("h{hour}-{i:03}"));
            r["timestamp"] = json!(START + hour * 3600 + i as i64 * 5);
            r
        })
        .collect();
    let (status, answer) = server.post_json("/v1/models/credit/predictions", &json!(records));
    assert_eq!(status, 200, "{answer}");
    server.flush();
}

/// (window_index, rows, window_start) of every row-count window.
fn row_windows(server: &Server) -> Vec<(u64, u64, String)> {
    let drift = get(server, "/v1/models/credit/drift?window=rows");
    drift["windows"]
        .as_array()
        .unwrap_or_else(|| panic!("no windows: {drift}"))
        .iter()
        .map(|w| {
            assert_eq!(w["window"], "rows", "{w}");
            let index = w["window_index"].as_u64().unwrap_or_else(|| panic!("no window_index: {w}"));
            (index, w["rows"].as_u64().unwrap(), w["window_start"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn row_count_windows_are_blocks_in_event_time_order_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(config(dir.path()))
        .unwrap()
        .replace("window = \"1h\"\n", "window_rows = 500\n")
        .replace("rolling_rows = 300\n", "");
    let cfg = dir.path().join("rows.toml");
    std::fs::write(&cfg, &text).unwrap();

    // Both kinds of window at once is a config error that names the field.
    let both = dir.path().join("both.toml");
    std::fs::write(&both, text.replace("window_rows = 500\n", "window_rows = 500\nwindow = \"1h\"\n")).unwrap();
    let out = std::process::Command::new(support::binary()).arg("check-config").arg(&both).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("analysis.window_rows: windows are either by event time"), "{stderr}");

    let server = Server::start(&cfg);
    // Four hours of 600 rows, 5 s apart; the world changes at hour 2 (row 1200). Hours are
    // posted out of order: blocks follow event time, not arrival.
    let mut rng = StdRng::seed_from_u64(2);
    for hour in [1, 0, 3, 2] {
        post_rows(&server, &mut rng, hour, 0..ROWS_PER_HOUR, hour >= 2);
    }
    let summary = analyze(&server);
    assert_eq!(summary["row_windows"], json!([0, 1, 2, 3, 4]), "{summary}");
    // Block k holds rows 500k.. in (timestamp, prediction_id) order; the last one is incomplete.
    let blocks = vec![
        (0, 500, "2026-11-20T00:00:00Z".to_string()),
        (1, 500, "2026-11-20T00:41:40Z".into()), // row 500: hour 0, row 500
        (2, 500, "2026-11-20T01:33:20Z".into()), // row 1000: hour 1, row 400
        (3, 500, "2026-11-20T02:25:00Z".into()), // row 1500: hour 2, row 300
        (4, 400, "2026-11-20T03:16:40Z".into()), // row 2000: hour 3, row 200
    ];
    assert_eq!(row_windows(&server), blocks);
    // Without `window`, a model with `window_rows` serves its row-count windows; it has no
    // event-time ones.
    let default = get(&server, "/v1/models/credit/drift");
    assert_eq!(default["windows"].as_array().unwrap().len(), 5, "{default}");
    assert_eq!(default["windows"][0]["window_end"], "2026-11-20T00:41:35.000001Z", "{default}"); // last row + 1 µs
    assert_eq!(get(&server, "/v1/models/credit/drift?window=tumbling")["windows"], json!([]));
    let age: Vec<bool> =
        drifted_by_hour(&server).iter().map(|(_, cols)| cols.iter().find(|(c, _)| c == "age").unwrap().1).collect();
    assert_eq!((age[0], age[1], age[3], age[4]), (false, false, true, true), "{age:?}");
    // The newest block is the latest window: /metrics and alerting see it.
    assert!(server.metrics().contains(r#"anchorwatch_window_rows{model="credit"} 400"#));

    // A restart recomputes nothing.
    server.stop();
    let server = Server::start(&cfg);
    let summary = analyze(&server);
    assert_eq!((&summary["row_windows"], &summary["windows"]), (&json!([]), &json!([])), "{summary}");
    assert_eq!(row_windows(&server), blocks);
    assert!(server.metrics().contains(r#"anchorwatch_window_rows{model="credit"} 400"#));

    // New rows after the last one: only the incomplete block and the new one are computed.
    post_rows(&server, &mut rng, 4, 0..200, true);
    let summary = analyze(&server);
    assert_eq!(summary["row_windows"], json!([4, 5]), "{summary}");
    let rows: Vec<u64> = row_windows(&server).iter().map(|w| w.1).collect();
    assert_eq!(rows, vec![500, 500, 500, 500, 500, 100]);
    assert!(server.metrics().contains(r#"anchorwatch_window_rows{model="credit"} 100"#));

    // A late row in hour 1 (row 601 in order) shifts every boundary after it: block 0 stays.
    let late = json!({"prediction_id": "late-1", "timestamp": START + 3600 + 2,
                      "features": {"age": 30, "region": "north", "income": 30000, "vip": false}, "prediction": "bad"});
    assert_eq!(server.post_json("/v1/models/credit/predictions", &late).0, 200);
    server.flush();
    let summary = analyze(&server);
    assert_eq!(summary["row_windows"], json!([1, 2, 3, 4, 5]), "{summary}");
    let after = row_windows(&server);
    let rows: Vec<u64> = after.iter().map(|w| w.1).collect();
    assert_eq!(rows, vec![500, 500, 500, 500, 500, 101]);
    assert_eq!(after[2].2, "2026-11-20T01:33:15Z", "block 2 now starts one row earlier"); // hour 1, row 399
    server.stop();
}

//! The closed loop, end to end, with the real ONNX Runtime: a first model is trained by the loop
//! itself and served; the world changes so its accuracy falls; the accuracy alert fires and its
//! `retrain` action runs the loop; the candidate wins on the holdout, is promoted and served, and
//! accuracy on the new world recovers; a rollback restores the old version. Also the failure
//! paths: a trainer that crashes, hangs, writes garbage or loses never touches the champion, and
//! two triggers at once start one run.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::{Server, wait_until};

/// Before the change, `yes` when x1 + x2 > 0; after it, when x1 − x2 > 0. `color` is noise.
fn world(rng: &mut StdRng, changed: bool) -> (Value, &'static str) {
    let (x1, x2): (f64, f64) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
    let color = ["red", "green", "blue"][rng.random_range(0..3)];
    let positive = if changed { x1 - x2 > 0.0 } else { x1 + x2 > 0.0 };
    (json!({"x1": x1, "x2": x2, "color": color}), if positive { "yes" } else { "no" })
}

/// The config; `data_window` is what the loop trains on; `extra` goes into `[models.retrain]`;
/// without `analysis`, no analysis runs (so the accuracy alert cannot start runs of its own).
fn config(dir: &Path, data_window: &str, extra: &str, analysis: bool) -> PathBuf {
    let analysis = if analysis { "" } else { "enabled = false" };
    let text = format!(
        r#"[store]
root = "store"
[collector]
flush_interval = "1h"
[predictor]
reload_interval = "1h"

[[models]]
name = "churn"
[models.schema]
prediction = "categorical"
label = "categorical"
scores = ["no", "yes"]
features = [
  {{ name = "x1", kind = "numerical" }},
  {{ name = "x2", kind = "numerical" }},
  {{ name = "color", kind = "categorical" }},
]
[models.analysis]
{analysis}
reference_rows = 300
window = "1h"
interval = "1h"
label_lookback = "3650d"
[models.retrain]
enabled = true
builtin = {{ kind = "logistic_regression" }}
data_window = "{data_window}"
holdout_fraction = 0.25
min_rows = 200
cooldown = "0s"
{extra}
[alerts]
default_rules = false

[[alerts.rules]]
name = "AccuracyDrop"
watch = "model_performance"
metric = "accuracy"
kind = "realized"
op = "<"
threshold = 0.75
labels = {{ severity = "page" }}

[[alerts.receivers]]
name = "retrain"
type = "retrain"
"#
    );
    let path = dir.join("anchorwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn get(server: &Server, path: &str) -> Value {
    support::client().get(server.url(path)).send().unwrap().json().unwrap()
}

/// Posts world-A history (two days ago) with labels, straight to ingest.
fn history(server: &Server, rng: &mut StdRng, rows: usize) {
    let start = chrono::Utc::now().timestamp() - 2 * 86400;
    let mut records = Vec::new();
    let mut labels = Vec::new();
    for i in 0..rows {
        let (features, truth) = world(rng, false);
        let id = format!("h{i}");
        records.push(
            json!({"prediction_id": id, "timestamp": start + i as i64, "features": features, "prediction": truth}),
        );
        labels.push(json!({"prediction_id": id, "label": truth}));
    }
    assert_eq!(server.post_json("/v1/models/churn/predictions", &Value::Array(records)).0, 200);
    assert_eq!(server.post_json("/v1/models/churn/labels", &Value::Array(labels)).0, 200);
}

/// Serves `rows` new-world requests through the predictor, posts their labels, and returns the
/// served version and its accuracy.
fn serve(server: &Server, rng: &mut StdRng, rows: usize) -> (String, f64) {
    let (features, truth): (Vec<Value>, Vec<&str>) = (0..rows).map(|_| world(rng, true)).unzip();
    let body = Value::Array(features.iter().map(|f| json!({"features": f})).collect());
    let (status, answer) = server.post_json("/v1/models/churn/predict", &body);
    assert_eq!(status, 200, "{answer}");
    let predictions = answer["predictions"].as_array().unwrap();
    let right = predictions.iter().zip(&truth).filter(|(p, t)| p["prediction"] == **t).count();
    let labels: Vec<Value> =
        predictions.iter().zip(&truth).map(|(p, t)| json!({"prediction_id": p["prediction_id"], "label": t})).collect();
    assert_eq!(server.post_json("/v1/models/churn/labels", &Value::Array(labels)).0, 200);
    (answer["model_version"].as_str().unwrap().to_string(), right as f64 / rows as f64)
}

fn runs(server: &Server) -> Vec<Value> {
    let answer = get(server, "/v1/models/churn/retrain/runs");
    answer["runs"].as_array().unwrap_or_else(|| panic!("{answer}")).clone()
}

/// Waits until the newest run is finished; returns it.
fn finished_run(server: &Server, count: usize) -> Value {
    let mut last = Value::Null;
    wait_until(Duration::from_secs(120), "the retraining run to finish", || {
        let r = runs(server);
        last = r.first().cloned().unwrap_or(Value::Null);
        r.len() >= count && last["status"] != "running"
    });
    last
}

fn champion(server: &Server) -> Option<u64> {
    get(server, "/v1/models/churn/versions")["champion"].as_u64()
}

#[test]
fn drift_fires_the_alert_the_loop_retrains_promotes_and_rollback_restores() {
    let Some(ort) = support::onnxruntime() else { return };
    let dir = tempfile::tempdir().unwrap();
    let env = [("ORT_DYLIB_PATH", ort.to_str().unwrap())];
    let mut rng = StdRng::seed_from_u64(3);

    // The first model: the loop trains it from two-day-old labeled history (a data window of
    // three days); with no champion it is promoted.
    let server = Server::start_with_env(&config(dir.path(), "3d", "", true), &env);
    history(&server, &mut rng, 600);
    server.flush();
    let (status, run) = server.post_json("/v1/models/churn/retrain", &json!({}));
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["status"], "running");
    let first = finished_run(&server, 1);
    assert_eq!(first["status"], "promoted", "{first}");
    assert_eq!(first["trigger"]["source"], "api");
    assert_eq!(first["rows"]["holdout"], 150, "{first}");
    assert!(first["scores"]["candidate"].as_f64().unwrap() > 0.9, "v1 learned world A: {first}");
    assert_eq!(champion(&server), Some(1));
    server.stop();

    // From now on the loop trains on the last hour only; the restarted server serves v1.
    let server = Server::start_with_env(&config(dir.path(), "1h", "", true), &env);

    // The world changes: v1 is now about as good as a coin.
    let (version, before) = serve(&server, &mut rng, 400);
    assert_eq!(version, "v1");
    assert!(before < 0.7, "v1 on the new world: {before}");
    server.flush();
    let (status, summary) = server.post_json("/v1/models/churn/analyze", &json!({}));
    assert_eq!(status, 200, "{summary}");

    // The accuracy alert fires, and its retrain action runs the loop, which promotes v2.
    let run = finished_run(&server, 2);
    assert_eq!(run["trigger"]["source"], "alert", "{run}");
    assert_eq!(run["trigger"]["reason"], "AccuracyDrop");
    assert_eq!(run["status"], "promoted", "{run}");
    assert_eq!(run["champion_version"], 1);
    assert_eq!(run["candidate_version"], 2);
    let (candidate, old) = (run["scores"]["candidate"].as_f64().unwrap(), run["scores"]["champion"].as_f64().unwrap());
    assert!(candidate > old + 0.25, "the candidate wins on the same holdout: {run}");
    assert!(run["reason"].as_str().unwrap().contains("new reference"), "{run}");
    let profile: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("store/churn/reference/profile.json")).unwrap()).unwrap();
    assert_eq!(profile["rows"], run["rows"]["train"], "the training rows are the reference: {profile}");
    let firing = get(&server, "/v1/alerts")["alerts"].as_array().unwrap().clone();
    assert!(firing.iter().any(|a| a["labels"]["alertname"] == "AccuracyDrop"), "{firing:?}");

    // Served by v2, the new world is predicted well again.
    let (version, after) = serve(&server, &mut rng, 400);
    assert_eq!(version, "v2");
    assert!(after > before + 0.25 && after > 0.9, "accuracy recovers: {before} -> {after}");
    let versions = get(&server, "/v1/models/churn/versions");
    let v2 = versions["versions"].as_array().unwrap().iter().find(|v| v["version"] == 2).unwrap().clone();
    assert_eq!(v2["source"], "trainer");
    assert_eq!(v2["trainer"], "logistic_regression");
    assert!(v2["holdout_metrics"]["accuracy"].as_f64().unwrap() > 0.9, "{v2}");

    // The UI shows both versions and the runs; its Roll back button (a form post) restores v1
    // and returns to the page.
    let page = support::client().get(server.url("/models/churn")).send().unwrap().text().unwrap();
    assert!(page.contains("/v1/models/churn/rollback") && page.contains("/versions/1/promote"), "{page}");
    let no_redirects =
        reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = no_redirects
        .post(server.url("/v1/models/churn/rollback"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html,application/xhtml+xml")
        .body("")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/models/churn?done=rolled-back-1#versions");
    assert_eq!(champion(&server), Some(1));
    let (version, _) = serve(&server, &mut rng, 50);
    assert_eq!(version, "v1");
    assert!(server.metrics().contains(r#"anchorwatch_retrain_runs_total{model="churn",status="promoted"} 1"#));
    eprintln!(
        "v1 on the new world {before:.3}; holdout champion {old:.3} vs candidate {candidate:.3}; v2 on the new world {after:.3}"
    );
    server.stop();
}

/// A config whose external trainer is `script` (a shell script written to the test folder).
fn with_trainer(dir: &Path, script: &str, timeout: &str) -> PathBuf {
    let path = dir.join("train.sh");
    std::fs::write(&path, script).unwrap();
    config(
        dir,
        "1h",
        &format!("trainer = \"command\"\ncommand = [\"sh\", \"{}\"]\ntimeout = \"{timeout}\"\n", path.display()),
        false,
    )
}

#[test]
fn external_trainers_and_failures_that_never_touch_the_champion() {
    let Some(ort) = support::onnxruntime() else { return };
    let dir = tempfile::tempdir().unwrap();
    let env = [("ORT_DYLIB_PATH", ort.to_str().unwrap())];
    let mut rng = StdRng::seed_from_u64(5);

    // A champion first, from the built-in trainer.
    let server = Server::start_with_env(&config(dir.path(), "3d", "", false), &env);
    history(&server, &mut rng, 400);
    server.flush();
    assert_eq!(server.post_json("/v1/models/churn/retrain", &json!({})).0, 202);
    assert_eq!(finished_run(&server, 1)["status"], "promoted");
    server.stop();
    // Two triggers at once: one run.
    let server = Server::start_with_env(&config(dir.path(), "1h", "", false), &env);
    serve(&server, &mut rng, 300);
    server.flush();
    let (a, first) = server.post_json("/v1/models/churn/retrain", &json!({}));
    let (b, second) = server.post_json("/v1/models/churn/retrain", &json!({}));
    assert_eq!(a, 202, "{first}");
    assert_eq!(b, 409, "{second}");
    assert_eq!(second["error"]["code"], "retrain_running");
    finished_run(&server, 2);
    server.stop();
    let champion_before = champion_file(dir.path());

    let cases = [
        ("crash", "echo 'loading data' ; echo 'boom: out of memory' >&2 ; exit 3\n", "30s", "exited with"),
        ("hang", "sleep 30\n", "1s", "longer than"),
        ("garbage", "echo 'not a model' > \"$ANCHORWATCH_OUTPUT\"\n", "30s", "not a valid model"),
        ("nothing", "exit 0\n", "30s", "wrote no model"),
    ];
    for (n, (name, script, timeout, expected)) in cases.iter().enumerate() {
        let config = with_trainer(dir.path(), script, timeout);
        let server = Server::start_with_env(&config, &env);
        assert_eq!(server.post_json("/v1/models/churn/retrain", &json!({})).0, 202, "{name}");
        let run = finished_run(&server, 3 + n);
        assert_eq!(run["status"], "failed", "{name}: {run}");
        assert!(run["reason"].as_str().unwrap().contains(expected), "{name}: {run}");
        assert_eq!(champion(&server), champion_version(&champion_before), "{name}");
        server.stop();
        assert_eq!(champion_file(dir.path()), champion_before, "{name} changed the champion");
    }
    // A candidate that does not win by the required margin is kept as `rejected`, not served.
    let server = Server::start_with_env(&config(dir.path(), "1h", "min_improvement = 0.9\n", false), &env);
    assert_eq!(server.post_json("/v1/models/churn/retrain", &json!({})).0, 202);
    let run = finished_run(&server, 3 + cases.len());
    assert_eq!(run["status"], "rejected", "{run}");
    assert!(run["reason"].as_str().unwrap().contains("lost"), "{run}");
    let versions = get(&server, "/v1/models/churn/versions");
    let loser = run["candidate_version"].as_u64().unwrap();
    let record = versions["versions"].as_array().unwrap().iter().find(|v| v["version"] == loser).unwrap().clone();
    assert_eq!(record["status"], "rejected", "{record}");
    assert_eq!(champion(&server), champion_version(&champion_before));
    server.stop();

    // A webhook trainer: the run is handed to the pipeline (a receiver on loopback) with the
    // paths of its data, and the champion stays until the pipeline uploads a model.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/train", listener.local_addr().unwrap());
    let received = std::thread::spawn(move || support::receive_one(listener));
    let extra = format!("trainer = \"webhook\"\nwebhook_url = \"{hook}\"\n");
    let server = Server::start_with_env(&config(dir.path(), "1h", &extra, false), &env);
    assert_eq!(server.post_json("/v1/models/churn/retrain", &json!({})).0, 202);
    let run = finished_run(&server, 4 + cases.len());
    assert_eq!(run["status"], "handed_off", "{run}");
    let body = received.join().unwrap();
    assert_eq!((body["model"].as_str(), body["run_id"].as_str()), (Some("churn"), run["id"].as_str()));
    assert!(Path::new(body["train_path"].as_str().unwrap()).is_file(), "{body}");
    assert_eq!(champion(&server), champion_version(&champion_before));
    server.stop();

    // The crash's log is kept with the run.
    let log = std::fs::read_dir(dir.path().join("store/churn/retrain/runs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| std::fs::read_to_string(e.path().join("trainer.log")).ok())
        .find(|l| l.contains("boom"));
    assert!(log.is_some_and(|l| l.contains("loading data")));

    // The example scikit-learn trainer of `examples/` follows the contract: its model is
    // validated, scored and (told to win whatever the margin) promoted and served.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let extra = format!(
        "trainer = \"command\"\ncommand = [\"{}\", \"{}\"]\nmin_improvement = -1.0\n",
        root.join(".venv/bin/python").display(),
        root.join("examples/train_sklearn.py").display()
    );
    let server = Server::start_with_env(&config(dir.path(), "1h", &extra, false), &env);
    assert_eq!(server.post_json("/v1/models/churn/retrain", &json!({})).0, 202);
    let run = finished_run(&server, 5 + cases.len());
    assert_eq!(run["status"], "promoted", "{run}");
    assert!(run["trainer"].as_str().unwrap().starts_with("command:"), "{run}");
    let (version, accuracy) = serve(&server, &mut rng, 100);
    assert_eq!(version, format!("v{}", run["candidate_version"]));
    assert!(accuracy > 0.8, "the sklearn model predicts the new world: {accuracy}");
    server.stop();

    // A run cut short by a crash reads as failed, interrupted, after the restart.
    let config = with_trainer(dir.path(), "sleep 20\n", "60s");
    let server = Server::start_with_env(&config, &env);
    let (status, started) = server.post_json("/v1/models/churn/retrain", &json!({}));
    assert_eq!((status, started["status"].as_str()), (202, Some("running")), "{started}");
    server.kill();
    let server = Server::start_with_env(&config, &env);
    let run = runs(&server).into_iter().find(|r| r["id"] == started["id"]).unwrap();
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["reason"].as_str().unwrap().contains("interrupted"), "{run}");
    server.stop();
}

fn champion_file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("store/churn/models/champion.json")).unwrap()
}

fn champion_version(text: &str) -> Option<u64> {
    serde_json::from_str::<Value>(text).ok()?["version"].as_u64()
}

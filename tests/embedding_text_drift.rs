//! Embeddings, text and the features' joint structure in the continuous analysis, end to end: a
//! model with two numerical, a categorical, a text and a 32-dimensional embedding feature.
//! Traffic without drift, then traffic where only the embedding and the way the two numbers go
//! together change: every column alone keeps its distribution. The windows, `/metrics`, alerts
//! delivered to a webhook on loopback and the UI's model page all show the embedding drift and
//! the multivariate drift, and no single column drifting.

use crate::support;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::{Receiver, Server, wait_until};

const START: i64 = 1_795_132_800; // 2026-11-20T00:00:00Z
// A reference of 1000 rows: Evidently compares the embeddings' classifier AUC with 0.55 (below 1000, with
// the 95th percentile of random classifiers' AUCs, which 1 window in 20 exceeds by design).
const ROWS: usize = 1000;
const DIMS: usize = 32;
const LATENT: usize = 4;

const WORDS: [&str; 24] = [
    "battery", "screen", "delivery", "price", "support", "quality", "camera", "sound", "update", "refund", "size",
    "colour", "charger", "case", "speed", "signal", "app", "warranty", "box", "manual", "cable", "button", "light",
    "strap",
];

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// The embedding model: a fixed 32 × 4 projection of a 4-dimensional topic vector, plus noise.
fn projection() -> Vec<[f64; LATENT]> {
    let mut rng = StdRng::seed_from_u64(99);
    (0..DIMS).map(|_| std::array::from_fn(|_| normal(&mut rng) / 2.0)).collect()
}

/// One request. After the change, the topic vector's first component moves by 3 standard
/// deviations: the embeddings drift. The discount, which grew with the amount, now shrinks with
/// it; as the amount is symmetric around 100, the discount's own distribution stays the same.
/// The channel and the review text are drawn exactly as before.
fn row(rng: &mut StdRng, w: &[[f64; LATENT]], ts: i64, changed: bool) -> Value {
    let mut topic: [f64; LATENT] = std::array::from_fn(|_| normal(rng));
    if changed {
        topic[0] += 3.0;
    }
    let vec: Vec<f64> =
        w.iter().map(|wi| wi.iter().zip(&topic).map(|(a, b)| a * b).sum::<f64>() + 0.1 * normal(rng)).collect();
    let words = rng.random_range(3..12);
    let mut review: Vec<&str> = (0..words).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
    review[0] = if rng.random_bool(0.5) { "The" } else { "My" };
    let end = if rng.random_bool(0.8) { "." } else { "?" };
    let amount = (normal(rng) * 20.0 + 100.0).round();
    let base = if changed { 200.0 - amount } else { amount };
    let discount = base * 0.2 + normal(rng);
    let channel = ["web", "app", "store"][rng.random_range(0..3)];
    json!({
        "timestamp": ts,
        "features": {"amount": amount, "discount": discount, "channel": channel, "review": review.join(" ") + end, "vec": vec},
        "prediction": amount / 100.0,
    })
}

fn hour(server: &Server, rng: &mut StdRng, w: &[[f64; LATENT]], h: i64, changed: bool) {
    let rows: Vec<Value> =
        (0..ROWS).map(|i| row(rng, w, START + h * 3600 + (i as i64 * 3600 / ROWS as i64), changed)).collect();
    let (status, body) = server.post_json("/v1/models/reviews/predictions", &Value::Array(rows));
    assert_eq!(status, 200, "{body}");
    server.flush();
    let (status, summary) = server.post_json("/v1/models/reviews/analyze", &json!({}));
    assert_eq!(status, 200, "{summary}");
}

fn config(dir: &std::path::Path, hooks: std::net::SocketAddr) -> std::path::PathBuf {
    let text = format!(
        r#"[store]
root = "store"
[collector]
flush_interval = "1h"
[[models]]
name = "reviews"
[models.schema]
prediction = "numerical"
features = [
  {{ name = "amount", kind = "numerical" }},
  {{ name = "discount", kind = "numerical" }},
  {{ name = "channel", kind = "categorical" }},
  {{ name = "review", kind = "text" }},
  {{ name = "vec", kind = "embedding", dim = {DIMS} }},
]
[models.analysis]
reference_rows = {ROWS}
window = "1h"
interval = "1h"
domain_classifier = true

[alerts]
default_rules = false
[[alerts.rules]]
name = "EmbeddingDrift"
watch = "feature_drifted"
feature = "vec"
op = "=="
threshold = 1
for = "1 windows"
[[alerts.rules]]
name = "JointDrift"
watch = "multivariate_drifted"
op = "=="
threshold = 1
for = "1 windows"
[[alerts.receivers]]
name = "hook"
type = "webhook"
url = "http://{hooks}/hook"
"#
    );
    let path = dir.join("anchorwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Per window: (column, role, kind, stattest, drifted, error, score).
type Row = (String, String, String, String, bool, Value, Value);

fn windows(server: &Server) -> Vec<Vec<Row>> {
    let drift: Value = support::client().get(server.url("/v1/models/reviews/drift")).send().unwrap().json().unwrap();
    let windows = drift["windows"].as_array().unwrap_or_else(|| panic!("no windows: {drift}"));
    windows
        .iter()
        .map(|w| {
            w["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                    (
                        s("column"),
                        s("role"),
                        s("kind"),
                        s("stattest"),
                        c["drifted"] == true,
                        c["error"].clone(),
                        c["score"].clone(),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn embedding_drift_shows_in_windows_metrics_alerts_and_the_ui() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start();
    let server = Server::start(&config(dir.path(), hooks.addr));
    let w = projection();
    let mut rng = StdRng::seed_from_u64(5);
    // Hour 0 becomes the reference; hour 1 is more of the same.
    hour(&server, &mut rng, &w, 0, false);
    hour(&server, &mut rng, &w, 1, false);
    hour(&server, &mut rng, &w, 2, true);

    let windows = windows(&server);
    assert_eq!(windows.len(), 3, "{windows:?}");
    for (i, columns) in windows.iter().enumerate() {
        let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "amount",
                "discount",
                "channel",
                "review",
                "review.text_length",
                "review.word_count",
                "review.non_letter_character_percentage",
                "review.sentence_count",
                "vec",
                "prediction",
                "data_reconstruction",
                "domain_classifier"
            ],
            "window {i}: every feature, the text's descriptors after it, the prediction, the multivariate method"
        );
        for (column, role, kind, stattest, drifted, error, score) in columns {
            assert!(error.is_null(), "window {i} {column}: {error}");
            let expected_drift =
                i == 2 && ["vec", "data_reconstruction", "domain_classifier"].contains(&column.as_str());
            assert_eq!(*drifted, expected_drift, "window {i} {column} ({stattest}, score {score})");
            match column.as_str() {
                "vec" => {
                    assert_eq!((role.as_str(), kind.as_str(), stattest.as_str()), ("feature", "embedding", "model"))
                }
                "review" => assert_eq!((kind.as_str(), stattest.as_str()), ("text", "perc_text_content_drift")),
                d if d.starts_with("review.") => assert_eq!((role.as_str(), kind.as_str()), ("descriptor", "num")),
                "data_reconstruction" | "domain_classifier" => {
                    assert_eq!((role.as_str(), kind.as_str(), stattest), ("multivariate", "multivariate", column))
                }
                _ => {}
            }
        }
    }

    // Data quality: free text and embeddings have missing values, not categories to be new to.
    let quality: Value =
        support::client().get(server.url("/v1/models/reviews/quality")).send().unwrap().json().unwrap();
    let last = quality["windows"].as_array().and_then(|w| w.last()).unwrap_or_else(|| panic!("{quality}"));
    for feature in ["review", "vec"] {
        let checks: Vec<&str> = (last["checks"].as_array().unwrap().iter())
            .filter(|c| c["feature"] == feature)
            .map(|c| c["check"].as_str().unwrap())
            .collect();
        assert_eq!(checks, ["missing_share"], "{feature}: {last}");
    }

    // /metrics: the embedding's verdict, the descriptors beside their text feature, the
    // multivariate method's value and verdict.
    let metrics = server.metrics();
    for line in [
        r#"anchorwatch_feature_drifted{feature="vec",model="reviews",stattest="model"} 1"#,
        r#"anchorwatch_feature_drifted{feature="review.text_length",model="reviews",stattest="ks"} 0"#,
        r#"anchorwatch_feature_drifted{feature="amount",model="reviews",stattest="ks"} 0"#,
        r#"anchorwatch_feature_drifted{feature="discount",model="reviews",stattest="ks"} 0"#,
        r#"anchorwatch_multivariate_drifted{method="data_reconstruction",model="reviews"} 1"#,
        r#"anchorwatch_multivariate_drifted{method="domain_classifier",model="reviews"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(metrics.contains(r#"anchorwatch_multivariate_drift{method="data_reconstruction",model="reviews"} "#));

    // The alerts fire and reach the webhook, with the series' labels: the joint rule once per
    // method.
    let delivered = || -> Vec<Value> {
        hooks.at("/hook").iter().flat_map(|r| r.json()["alerts"].as_array().cloned().unwrap_or_default()).collect()
    };
    wait_until(Duration::from_secs(60), "the alerts to be delivered", || delivered().len() >= 3);
    let mut alerts: Vec<(String, String, String)> = delivered()
        .iter()
        .map(|a| {
            let l = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_string();
            (l("alertname"), l("feature"), l("method"))
        })
        .collect();
    alerts.sort();
    assert_eq!(
        alerts,
        [
            ("EmbeddingDrift".into(), "vec".into(), String::new()),
            ("JointDrift".into(), String::new(), "data_reconstruction".into()),
            ("JointDrift".into(), String::new(), "domain_classifier".into())
        ]
    );
    assert!(hooks.at("/hook").iter().all(|r| r.json()["status"] == "firing"));

    // The UI's model page picks a drifted column and draws the embedding's and the multivariate
    // method's scores per window.
    let page = support::client().get(server.url("/models/reviews")).send().unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().unwrap();
    let joint = &page[page.find("id=\"multivariate\"").expect("the features-taken-jointly chart")..];
    let joint = &joint[..joint.find("</svg>").unwrap()];
    assert_eq!(joint.matches("<circle class=\"point\"").count(), 6, "error and upper bound in 3 windows: {joint}");
    for column in ["vec", "data_reconstruction"] {
        let cell = format!("data-feature=\"{column}\" data-window=\"2\"");
        assert!(page.contains(&cell), "a heatmap cell for {column} in the last window");
    }
    server.stop();
}

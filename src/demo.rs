//! `anchorwatch demo`: the whole MLOps loop on one credit-scoring model, told on the terminal.
//!
//! The story, in order (each step prints what happened, with its figures, and where to see it):
//!
//! 1. *History*: past applications, scored by the bank's old scorecard, with their outcomes, are
//!    ingested with their own timestamps (yesterday).
//! 2. *First model*: the retraining loop trains one on that history with the built-in trainer
//!    (`POST /v1/models/credit/retrain`; with no champion, it is promoted) and its training rows
//!    become the drift reference. The server then restarts with the operating config, whose
//!    retraining window is "the last day" in compressed time.
//! 3. *Traffic*: each simulated hour, applications are scored through the built-in predictor
//!    (`POST /v1/models/credit/predict`, every prediction captured), the hour is analysed
//!    (`POST /v1/models/credit/analyze`: drift and the label-free accuracy estimate), then the
//!    outcomes arrive, a delay later, as labels by prediction id (about 90% of them; the rest
//!    never come), and the hour is analysed again (realized accuracy).
//! 4. *The shift*: the world changes at a known hour ([`scenario`]). Drift is detected and its
//!    alert is delivered to the demo's own webhook receiver and mailbox ([`receivers`]); once
//!    labels arrive, realized accuracy falls, and the accuracy alert goes to them and to the
//!    retraining loop, which trains on the traffic since the shift, beats the champion on the
//!    same holdout and promotes the new model.
//! 5. *Recovery*: the next hours are served by the new model; accuracy is back.
//!
//! Time is compressed: a simulated hour takes about a second with `--fast` (a few with the
//! default pace), and the retraining window (`data_window`) is a few seconds of wall time. The
//! demo waits, when it must, so that the run the alert triggers sees only post-shift traffic.

mod receivers;
mod scenario;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config;
use crate::server::Server;
use receivers::Delivery;
use scenario::World;

/// The demo's config, embedded so `anchorwatch demo` runs anywhere (`examples/demo.toml`).
pub const CONFIG: &str = include_str!("../examples/demo.toml");

const MODEL: &str = "credit";

/// How `anchorwatch demo` runs (its command-line flags).
pub struct Options {
    /// Where the demo keeps its data (wiped at start).
    pub store: PathBuf,
    /// The server's address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Applications per simulated hour (one analysis window); default by pace.
    pub rows: Option<usize>,
    /// Compress time: the whole loop in well under a minute.
    pub fast: bool,
    /// Keep the server running afterwards, until Ctrl-C.
    pub serve: bool,
}

/// The demo's tempo.
struct Pace {
    /// Applications per simulated hour (= `window_rows`).
    rows: usize,
    /// Prediction requests per hour.
    batches: usize,
    /// Past applications the first model learns from.
    history: usize,
    /// Hours served before the shift.
    hours_before: usize,
    /// Hours served by the retrained model.
    hours_after: usize,
    /// Wait between steps, for people to read.
    pause: Duration,
    /// The retraining loop's `data_window`: "the last day" in compressed time.
    data_window: Duration,
    /// Quiet time between the last application before the shift and the first after it, so the
    /// data window can hold the one without the other.
    gap: Duration,
}

impl Pace {
    fn new(fast: bool, rows: Option<usize>) -> Self {
        let mut pace = if fast {
            Pace {
                rows: 400,
                batches: 4,
                history: 2000,
                hours_before: 2,
                hours_after: 2,
                pause: Duration::ZERO,
                data_window: Duration::from_secs(12),
                gap: Duration::from_secs(5),
            }
        } else {
            Pace {
                rows: 1000,
                batches: 10,
                history: 4000,
                hours_before: 3,
                hours_after: 3,
                pause: Duration::from_millis(1200),
                data_window: Duration::from_secs(30),
                gap: Duration::from_secs(12),
            }
        };
        if let Some(rows) = rows {
            pace.rows = rows.max(100);
            pace.batches = pace.batches.min(pace.rows);
            pace.history = pace.history.max(4 * pace.rows);
        }
        pace
    }
}

/// Runs the demo; see the module docs.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let pace = Pace::new(options.fast, options.rows);
    println!(
        "anchorwatch demo: the whole loop on a credit-scoring model{}.",
        if options.fast { ", time compressed (--fast)" } else { "" }
    );
    println!("A bank scores loan applications (age, income, loan amount, term, employment, region, past");
    println!("default); whether a loan goes bad is known later. At a known hour the world shifts (a recession");
    println!("and a new online channel); anchorwatch has to notice, tell people, retrain and recover.\n");

    let library = crate::lifecycle::runtime::find_library().map_err(|e| {
        anyhow::anyhow!(
            "the demo serves its models with ONNX Runtime, which is not installed.\n  Run `make setup-onnxruntime` (`make demo` does it for you), then try again.\n  Details: {e}"
        )
    })?;

    let store = &options.store;
    if store.exists() {
        std::fs::remove_dir_all(store).with_context(|| format!("cannot clear {}", store.display()))?;
    }
    std::fs::create_dir_all(store)?;
    let store = store.canonicalize()?;
    let listen = fixed_port(options.listen)?;
    let base = format!("http://{listen}");
    let (tx, deliveries) = mpsc::unbounded_channel();
    let webhook_url = receivers::webhook(tx.clone()).await?;
    let mailbox_dir = store.join("mailbox");
    let mailbox = receivers::mailbox(mailbox_dir.clone(), tx).await?;
    let config_path = store.join("anchorwatch.toml");
    let settings = Settings { store: store.clone(), base: base.clone(), webhook_url: webhook_url.clone(), mailbox };

    println!("Set-up");
    println!("  store            {}", store.display());
    println!("  ONNX Runtime     {}", library.display());
    println!("  webhook receiver {webhook_url} (in this process)");
    println!("  mailbox          smtp://{mailbox} (in this process), messages in {}", mailbox_dir.display());
    println!("  config           {} (from examples/demo.toml)", config_path.display());

    let mut demo = Demo {
        client: reqwest::Client::new(),
        base: base.clone(),
        pace,
        rng: StdRng::seed_from_u64(7),
        deliveries,
        delivered: Vec::new(),
        firing: BTreeSet::new(),
        hour: 0,
        figures: Figures::default(),
        started: Instant::now(),
    };

    // 1–2. History and the first model, with a retraining window that reaches back over it.
    std::fs::write(&config_path, settings.config(Duration::from_secs(7 * 86400))?)?;
    let server = Server::start(&config::load(&config_path)?, listen).await?;
    println!("  server           {base}   (metrics {base}/metrics, API {base}/openapi.json)\n");
    demo.history().await?;
    demo.first_model().await?;
    server.shutdown().await?;

    std::fs::write(&config_path, settings.config(demo.pace.data_window)?)?;
    let server = Server::start(&config::load(&config_path)?, listen).await?;
    println!(
        "\n  The server restarts with the operating config: the loop now trains on the last {}s of traffic",
        demo.pace.data_window.as_secs()
    );
    println!("  (\"the last day\" in the demo's compressed time).\n");
    demo.pause().await;

    // 3. Hours before the shift.
    println!("Traffic before the shift: {} applications an hour, scored by the predictor", demo.pace.rows);
    println!("  (watch: {base}/v1/models/{MODEL}/performance, {base}/v1/models/{MODEL}/drift)");
    let mut before = Vec::new();
    for _ in 0..demo.pace.hours_before {
        before.push(demo.hour(World::Steady).await?);
    }
    let last_before = Instant::now();
    let accuracy_before = before.last().and_then(|h| h.realized).context("no realized accuracy before the shift")?;
    demo.figures.before = Some(accuracy_before);
    println!("  ✔ accuracy before the shift: {accuracy_before:.3} (realized, v1)\n");

    // 4. The shift.
    demo.pause().await;
    println!("The world shifts now (hour {}): a recession, and a new online channel.", demo.hour + 1);
    println!("  Applicants get younger and poorer, ask for longer loans, and many more are self-employed;");
    println!("  self-employed applicants now default far more often. The model does not know.\n");
    tokio::time::sleep(demo.pace.gap.saturating_sub(last_before.elapsed())).await;
    let shifted = demo.shift_hour(last_before).await?;
    demo.figures.after = Some(shifted);
    let run = demo.retraining().await?;

    // 5. Recovery.
    println!("\nTraffic after the promotion, served by v{}", run["candidate_version"]);
    let mut after = Vec::new();
    for _ in 0..demo.pace.hours_after {
        after.push(demo.hour(World::Recession).await?);
    }
    let recovered = after.last().and_then(|h| h.realized).context("no realized accuracy after the promotion")?;
    demo.figures.recovered = Some(recovered);
    println!(
        "  ✔ accuracy after the promotion: {recovered:.3} (realized, {})\n",
        after.last().map(|h| h.version.as_str()).unwrap_or("?")
    );

    demo.summary(&config_path, &mailbox_dir);
    if options.serve {
        println!("\nThe server keeps running at {base}; Ctrl-C stops it.");
        let _ = tokio::signal::ctrl_c().await;
    }
    server.shutdown().await?;
    Ok(())
}

/// `listen` with its port fixed (a free one for port 0), so the URLs stay the same across the
/// demo's restart.
fn fixed_port(listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    if listen.port() != 0 {
        return Ok(listen);
    }
    let probe = std::net::TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    Ok(probe.local_addr()?)
}

/// What the demo fills into its config.
struct Settings {
    store: PathBuf,
    base: String,
    webhook_url: String,
    mailbox: SocketAddr,
}

impl Settings {
    /// `examples/demo.toml` with the demo's store, receivers and `data_window`.
    fn config(&self, data_window: Duration) -> anyhow::Result<String> {
        let mut config: toml::Table = toml::from_str(CONFIG).context("examples/demo.toml")?;
        let table = |config: &toml::Table, key: &str| -> anyhow::Result<toml::Table> {
            config.get(key).and_then(toml::Value::as_table).cloned().with_context(|| format!("demo config: no [{key}]"))
        };
        let mut store = table(&config, "store")?;
        store.insert("root".into(), self.store.display().to_string().into());
        config.insert("store".into(), store.into());
        let mut server = table(&config, "server")?;
        server.insert("listen".into(), self.base.trim_start_matches("http://").into());
        config.insert("server".into(), server.into());
        let mut alerts = table(&config, "alerts")?;
        alerts.insert("external_url".into(), self.base.clone().into());
        for receiver in alerts.get_mut("receivers").and_then(toml::Value::as_array_mut).into_iter().flatten() {
            let Some(r) = receiver.as_table_mut() else { continue };
            match r.get("type").and_then(toml::Value::as_str) {
                Some("webhook") => {
                    r.insert("url".into(), self.webhook_url.clone().into());
                }
                Some("email") => {
                    r.insert("smtp_host".into(), self.mailbox.ip().to_string().into());
                    r.insert("smtp_port".into(), i64::from(self.mailbox.port()).into());
                }
                _ => {}
            }
        }
        config.insert("alerts".into(), alerts.into());
        let models =
            config.get_mut("models").and_then(toml::Value::as_array_mut).context("demo config: no [[models]]")?;
        for model in models.iter_mut().filter_map(toml::Value::as_table_mut) {
            if let Some(retrain) = model.get_mut("retrain").and_then(toml::Value::as_table_mut) {
                retrain.insert("data_window".into(), format!("{}s", data_window.as_secs()).into());
            }
        }
        let text = toml::to_string(&config)?;
        Ok(format!(
            "# anchorwatch demo: examples/demo.toml as this run uses it (written by `anchorwatch demo`).\n{text}"
        ))
    }
}

/// One simulated hour, as the service reported it.
struct Hour {
    /// The model version that served it (`v1`, ...).
    version: String,
    /// Realized accuracy of its window, once labels arrived.
    realized: Option<f64>,
}

#[derive(Default)]
struct Figures {
    v1_holdout: Option<f64>,
    before: Option<f64>,
    estimated_after: Option<f64>,
    after: Option<f64>,
    drift_share: Option<f64>,
    drifted: Vec<String>,
    alerts: Vec<String>,
    run: Option<Value>,
    recovered: Option<f64>,
}

struct Demo {
    client: reqwest::Client,
    base: String,
    pace: Pace,
    rng: StdRng,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    delivered: Vec<Delivery>,
    firing: BTreeSet<String>,
    hour: usize,
    figures: Figures,
    started: Instant,
}

/// The newest window of a results answer (`GET /v1/models/{model}/drift` or `.../performance`).
fn newest(answer: &Value) -> Value {
    answer["windows"]
        .as_array()
        .and_then(|w| w.iter().max_by_key(|w| w["window_index"].as_u64().unwrap_or(0)).cloned())
        .unwrap_or(Value::Null)
}

/// A metric of a performance window.
fn metric(window: &Value, name: &str, kind: &str) -> Option<f64> {
    window["metrics"].as_array()?.iter().find(|m| m["metric"] == name && m["kind"] == kind)?["value"].as_f64()
}

impl Demo {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = self.url(path);
        let response = self.client.post(&url).json(body).send().await.with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let answer: Value = response.json().await.with_context(|| format!("POST {url}: unreadable answer"))?;
        anyhow::ensure!(status.is_success(), "POST {url} answered {status}: {answer}");
        Ok(answer)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = self.url(path);
        let response = self.client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let answer: Value = response.json().await.with_context(|| format!("GET {url}: unreadable answer"))?;
        anyhow::ensure!(status.is_success(), "GET {url} answered {status}: {answer}");
        Ok(answer)
    }

    async fn pause(&self) {
        tokio::time::sleep(self.pace.pause).await;
    }

    fn clock(&self) -> String {
        format!("[{:>5.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// Past applications (yesterday), scored by the old scorecard, with their outcomes.
    async fn history(&mut self) -> anyhow::Result<()> {
        let n = self.pace.history;
        // Yesterday's applications: one Parquet file per hour of event time, so a day, not a month.
        let start = chrono::Utc::now().timestamp() - 25 * 3600;
        let step = (24 * 3600 / n as i64).max(1);
        let (mut records, mut labels) = (Vec::new(), Vec::new());
        for i in 0..n {
            let a = scenario::applicant(&mut self.rng, World::Steady);
            let id = format!("hist-{i:05}");
            records.push(json!({
                "prediction_id": id, "timestamp": start + i as i64 * step, "model_version": "scorecard",
                "features": a.features, "prediction": if a.p_bad >= 0.5 { "bad" } else { "good" },
                "scores": {"bad": a.p_bad, "good": 1.0 - a.p_bad},
            }));
            labels.push(json!({"prediction_id": id, "label": a.outcome}));
        }
        for chunk in records.chunks(1000) {
            self.post(&format!("/v1/models/{MODEL}/predictions"), &Value::Array(chunk.to_vec())).await?;
        }
        for chunk in labels.chunks(1000) {
            self.post(&format!("/v1/models/{MODEL}/labels"), &Value::Array(chunk.to_vec())).await?;
        }
        self.post("/v1/flush", &json!({})).await?;
        println!("{} 1. History: {n} past applications from yesterday, scored by the old scorecard,", self.clock());
        println!(
            "          with their outcomes, ingested (POST {}/v1/models/{MODEL}/predictions and /labels).",
            self.base
        );
        Ok(())
    }

    /// The loop trains the first model on the history; with no champion it is promoted.
    async fn first_model(&mut self) -> anyhow::Result<()> {
        self.pause().await;
        println!(
            "{} 2. First model: POST {}/v1/models/{MODEL}/retrain (built-in logistic regression)",
            self.clock(),
            self.base
        );
        self.post(&format!("/v1/models/{MODEL}/retrain"), &json!({})).await?;
        let run = self.finished_run(|_| true).await?;
        anyhow::ensure!(run["status"] == "promoted", "the first model was not promoted: {run}");
        let score = run["scores"]["candidate"].as_f64();
        self.figures.v1_holdout = score;
        println!(
            "  ✔ first model: v{} promoted, trained on {} rows, accuracy {} on the {} newest (the holdout)",
            run["candidate_version"],
            run["rows"]["train"],
            score.map(|s| format!("{s:.3}")).unwrap_or("?".into()),
            run["rows"]["holdout"]
        );
        println!(
            "          Its training rows are the drift reference now. Versions: {}/v1/models/{MODEL}/versions",
            self.base
        );
        Ok(())
    }

    /// Waits for the newest run matching `which` to finish; returns it.
    async fn finished_run(&self, which: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let runs = self.get(&format!("/v1/models/{MODEL}/retrain/runs")).await?;
            if let Some(run) = runs["runs"].as_array().and_then(|r| r.iter().find(|r| which(r)))
                && run["status"] != "running"
            {
                return Ok(run.clone());
            }
            anyhow::ensure!(Instant::now() < deadline, "no retraining run finished within 3 minutes");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Serves one hour of applications from `world` through the predictor; returns the served
    /// version and the labels to post later.
    async fn serve(&mut self, world: World) -> anyhow::Result<(String, Vec<Value>)> {
        self.hour += 1;
        let (rows, batches) = (self.pace.rows, self.pace.batches);
        let mut labels = Vec::new();
        let mut version = String::new();
        for b in 0..batches {
            let n = rows * (b + 1) / batches - rows * b / batches;
            let applicants: Vec<_> = (0..n).map(|_| scenario::applicant(&mut self.rng, world)).collect();
            let body = Value::Array(applicants.iter().map(|a| json!({"features": a.features})).collect());
            let answer = self.post(&format!("/v1/models/{MODEL}/predict"), &body).await?;
            version = answer["model_version"].as_str().unwrap_or("?").to_string();
            let predictions = answer["predictions"].as_array().context("the predictor answered no predictions")?;
            for (p, a) in predictions.iter().zip(&applicants) {
                // About 10% of outcomes never become known (loans sold on, customers gone).
                if self.rng.random_bool(0.9) {
                    labels.push(json!({"prediction_id": p["prediction_id"], "label": a.outcome}));
                }
            }
            if !self.pace.pause.is_zero() {
                tokio::time::sleep(self.pace.pause / 4).await;
            }
        }
        Ok((version, labels))
    }

    /// Flushes, analyses, and returns the newest window's drift and performance.
    async fn analyze(&mut self) -> anyhow::Result<(Value, Value)> {
        self.post("/v1/flush", &json!({})).await?;
        self.post(&format!("/v1/models/{MODEL}/analyze"), &json!({})).await?;
        let drift = newest(&self.get(&format!("/v1/models/{MODEL}/drift")).await?);
        let performance = newest(&self.get(&format!("/v1/models/{MODEL}/performance")).await?);
        Ok((drift, performance))
    }

    /// Posts the labels (the outcomes arrive) and analyses again.
    async fn outcomes(&mut self, labels: &[Value]) -> anyhow::Result<Value> {
        for chunk in labels.chunks(1000) {
            self.post(&format!("/v1/models/{MODEL}/labels"), &Value::Array(chunk.to_vec())).await?;
        }
        let (_, performance) = self.analyze().await?;
        Ok(performance)
    }

    /// One ordinary hour: serve, analyse (estimate), outcomes arrive, analyse (realized).
    async fn hour(&mut self, world: World) -> anyhow::Result<Hour> {
        self.pause().await;
        let (version, labels) = self.serve(world).await?;
        let (drift, performance) = self.analyze().await?;
        let estimated = metric(&performance, "accuracy", "estimated");
        let share = drift["dataset_drift_share"].as_f64().unwrap_or(0.0);
        println!(
            "{} hour {:>2}: {} applications scored by {version}; drift share {share:.2}; estimated accuracy {}",
            self.clock(),
            self.hour,
            self.pace.rows,
            fmt(estimated),
        );
        self.alerts().await?;
        self.pause().await;
        let performance = self.outcomes(&labels).await?;
        let realized = metric(&performance, "accuracy", "realized");
        println!("          outcomes arrived: {} labels; realized accuracy {}", labels.len(), fmt(realized));
        self.alerts().await?;
        Ok(Hour { version, realized })
    }

    /// The first hour after the shift, told step by step; returns its realized accuracy.
    async fn shift_hour(&mut self, last_before: Instant) -> anyhow::Result<f64> {
        let (version, labels) = self.serve(World::Recession).await?;
        let first_after = Instant::now();
        println!("{} hour {:>2}: {} applications scored by {version}", self.clock(), self.hour, self.pace.rows);
        let (drift, performance) = self.analyze().await?;
        let share = drift["dataset_drift_share"].as_f64().unwrap_or(0.0);
        let drifted: Vec<String> = drift["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["role"] == "feature" && c["drifted"] == true)
            .map(|c| {
                format!(
                    "{} ({} {:.2})",
                    c["column"].as_str().unwrap_or("?"),
                    c["stattest"].as_str().unwrap_or("?"),
                    c["score"].as_f64().unwrap_or(f64::NAN)
                )
            })
            .collect();
        let features =
            drift["columns"].as_array().map(|c| c.iter().filter(|c| c["role"] == "feature").count()).unwrap_or(0);
        println!(
            "  ✔ drift detected: {} of {features} features drifted (share {share:.2}): {}",
            drifted.len(),
            drifted.join(", ")
        );
        println!(
            "          see {}/v1/models/{MODEL}/drift and anchorwatch_dataset_drift_share on {}/metrics",
            self.base, self.base
        );
        self.figures.drift_share = Some(share);
        self.figures.drifted = drifted;
        self.alerts().await?;
        let estimated = metric(&performance, "accuracy", "estimated");
        self.figures.estimated_after = estimated;
        println!(
            "  ✔ estimated accuracy (no labels yet, from the model's own scores): {} — the scores still look confident",
            fmt(estimated)
        );

        // The outcomes arrive. The run the accuracy alert starts must not see pre-shift traffic:
        // wait until it has left the retraining window.
        let ready = last_before + self.pace.data_window + Duration::from_millis(500);
        let wait = ready.saturating_duration_since(Instant::now());
        println!(
            "{} waiting {:.1}s for the outcomes of hour {} (labels arrive later; in compressed time, a day)",
            self.clock(),
            wait.as_secs_f64(),
            self.hour
        );
        tokio::time::sleep(wait).await;
        self.pause().await;
        let performance = self.outcomes(&labels).await?;
        let realized = metric(&performance, "accuracy", "realized").context("no realized accuracy after the shift")?;
        println!(
            "  ✔ accuracy after the shift: {realized:.3} (realized from {} labels; it was {} before)",
            labels.len(),
            fmt(self.figures.before)
        );
        println!(
            "          see {}/v1/models/{MODEL}/performance and anchorwatch_model_performance on /metrics",
            self.base
        );
        self.alerts().await?;
        if first_after.elapsed() > self.pace.data_window {
            println!(
                "  (this machine is slow: the retraining window may have lost the first applications after the shift)"
            );
        }
        Ok(realized)
    }

    /// Waits for the retraining run the accuracy alert started and tells its outcome.
    async fn retraining(&mut self) -> anyhow::Result<Value> {
        println!("{} retraining: the alert's `retrain` receiver started a run; waiting for it", self.clock());
        let run = self.finished_run(|r| r["trigger"]["source"] == "alert").await?;
        let (candidate, champion) = (run["scores"]["candidate"].as_f64(), run["scores"]["champion"].as_f64());
        println!(
            "          run {}: {} rows (train {}, holdout {}) from {} to {}, trainer {}",
            run["id"].as_str().unwrap_or("?"),
            run["rows"]["train"].as_u64().unwrap_or(0) + run["rows"]["holdout"].as_u64().unwrap_or(0),
            run["rows"]["train"],
            run["rows"]["holdout"],
            run["training_window"]["from"].as_str().unwrap_or("?"),
            run["training_window"]["to"].as_str().unwrap_or("?"),
            run["trainer"].as_str().unwrap_or("?"),
        );
        anyhow::ensure!(run["status"] == "promoted", "the retraining run did not promote its model: {run}");
        println!(
            "  ✔ retraining run promoted v{}: accuracy on the same holdout, candidate {} vs champion v{} {}",
            run["candidate_version"],
            fmt(candidate),
            run["champion_version"],
            fmt(champion)
        );
        println!("          {}", run["reason"].as_str().unwrap_or(""));
        println!("          see {}/v1/models/{MODEL}/retrain/runs and /v1/models/{MODEL}/versions", self.base);
        self.figures.run = Some(run.clone());
        Ok(run)
    }

    /// Tells alert state changes since the last call, and waits for the webhook and mailbox to
    /// receive each one.
    async fn alerts(&mut self) -> anyhow::Result<()> {
        let answer = self.get("/v1/alerts").await?;
        let mut firing = BTreeSet::new();
        let mut values = std::collections::BTreeMap::new();
        for a in answer["alerts"].as_array().into_iter().flatten() {
            if a["state"] == "firing" {
                let name = a["labels"]["alertname"].as_str().unwrap_or("?").to_string();
                values.insert(name.clone(), a["value"].as_f64());
                firing.insert(name);
            }
        }
        let started: Vec<String> = firing.difference(&self.firing).cloned().collect();
        let ended: Vec<String> = self.firing.difference(&firing).cloned().collect();
        self.firing = firing;
        let mut expected = Vec::new();
        for name in &started {
            let to =
                if name == "CreditAccuracyDrop" { "webhook, mailbox, retraining loop" } else { "webhook, mailbox" };
            println!("  ✔ alert firing: {name} (value {}) → {to}", fmt(values.get(name).copied().flatten()));
            self.figures.alerts.push(name.clone());
            expected.push(("firing", name.clone()));
        }
        for name in &ended {
            println!("  ✔ alert resolved: {name}");
            // While another alert of the model still fires, the resolution travels inside that
            // group's `firing` notification; a `resolved` one comes only when none fires.
            if self.firing.is_empty() {
                expected.push(("resolved", name.clone()));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let received = |d: &[Delivery], via: &str, status: &str, name: &str| {
            d.iter().any(|d| d.via == via && d.status == status && d.alerts.iter().any(|a| a == name))
        };
        let mut start = self.delivered.len();
        loop {
            while let Ok(d) = self.deliveries.try_recv() {
                self.delivered.push(d);
            }
            for d in &self.delivered[start..] {
                match &d.file {
                    Some(file) => println!(
                        "          mailbox received \"{}\" → {}",
                        d.subject.as_deref().unwrap_or(""),
                        file.display()
                    ),
                    None => println!("          webhook received: {} [{}]", d.status, d.alerts.join(", ")),
                }
            }
            start = self.delivered.len();
            let done = expected.iter().all(|(status, name)| {
                received(&self.delivered, "webhook", status, name) && received(&self.delivered, "mailbox", status, name)
            });
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                println!(
                    "          (not every notification arrived within 20 s; see {}/v1/alerts?history=20)",
                    self.base
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn summary(&self, config_path: &Path, mailbox: &Path) {
        let f = &self.figures;
        let run = f.run.clone().unwrap_or(Value::Null);
        let webhook = self.delivered.iter().filter(|d| d.via == "webhook").count();
        let mails = self.delivered.iter().filter(|d| d.via == "mailbox").count();
        println!("Summary ({:.0}s)", self.started.elapsed().as_secs_f64());
        println!("  first model (v1) holdout accuracy   {}", fmt(f.v1_holdout));
        println!("  accuracy before the shift           {}", fmt(f.before));
        println!("  drift share at the shift            {} ({})", fmt(f.drift_share), f.drifted.join(", "));
        println!("  accuracy after the shift, estimated {}", fmt(f.estimated_after));
        println!("  accuracy after the shift, realized  {}", fmt(f.after));
        println!("  alerts fired                        {}", f.alerts.join(", "));
        println!(
            "  notifications                       {webhook} to the webhook, {mails} to the mailbox ({})",
            mailbox.display()
        );
        println!(
            "  retraining                          v{} promoted: {} vs {} for v{} on the same holdout",
            run["candidate_version"],
            fmt(run["scores"]["candidate"].as_f64()),
            fmt(run["scores"]["champion"].as_f64()),
            run["champion_version"]
        );
        println!("  accuracy after the promotion        {}", fmt(f.recovered));
        println!("\nLook around:");
        println!(
            "  cargo run -- query --config {} \"SELECT model_version, count(*) FROM predictions GROUP BY 1\"",
            config_path.display()
        );
        println!(
            "  the alert history and the runs: {}/v1/alerts?history=20, {}/v1/models/{MODEL}/retrain/runs",
            self.base, self.base
        );
        println!("  (with --serve, or `make demo DEMO_ARGS=--serve`, the server stays up afterwards)");
        println!("  Grafana dashboards over /metrics: docs/grafana.md");
    }
}

fn fmt(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

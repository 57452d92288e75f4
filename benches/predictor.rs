//! Built-in predictor throughput and latency, with and without capture: starts the real binary
//! (release build) once per `predictor.capture` setting, each on a temporary store, serves a
//! gradient-boosted classifier made in-process by the built-in trainer (100 trees of depth 3,
//! 8 numerical and 2 categorical features), and drives `POST /v1/models/{model}/predict` with
//! batches of 1 and 64 rows. Prints rows/s, requests/s, p50 and p99 latency per (batch, capture),
//! and what capture costs. Run with `make bench-predictor` (`cargo bench --bench predictor`);
//! `BASELINE_BIN=path/to/anchorwatch` adds another build, capture on, to the same run.
//! Not a test: the figures depend on the machine, and nothing is asserted on them.
//!
//! Needs ONNX Runtime (`make setup-onnxruntime`, or `ORT_DYLIB_PATH`). The load generator is one
//! thread on the same machine, a closed loop of a few keep-alive clients: it competes with the
//! server for the CPU, and the latencies include waiting for one of the `pool_size` sessions.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anchorwatch_trainer::{Data, Feature, GradientBoostingSpec, Target, TrainData, TrainSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const CLIENTS: usize = 8;
const WARMUP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(10);
const BATCHES: [usize; 2] = [1, 64];
const NUMERICAL: [&str; 8] = ["age", "income", "balance", "tenure", "utilization", "late_payments", "score", "debt"];
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
const PLANS: [&str; 6] = ["basic", "plus", "pro", "team", "enterprise", "student"];

fn config(capture: bool) -> String {
    let mut features: Vec<String> =
        NUMERICAL.iter().map(|n| format!("  {{ name = \"{n}\", kind = \"numerical\" }},")).collect();
    features.push("  { name = \"region\", kind = \"categorical\" },".into());
    features.push("  { name = \"plan\", kind = \"categorical\" },".into());
    format!(
        r#"[store]
root = "store"

[predictor]
capture = {capture}

[[models]]
name = "bench"
[models.schema]
prediction = "categorical"
scores = ["bad", "good"]
features = [
{}
]
"#,
        features.join("\n")
    )
}

/// One synthetic customer: numbers on different scales, two categories.
struct Row {
    numbers: [f64; 8],
    region: &'static str,
    plan: &'static str,
}

fn row(rng: &mut StdRng) -> Row {
    let numbers = [
        rng.random_range(18.0..80.0_f64).round(),
        rng.random_range(10_000.0..200_000.0),
        rng.random_range(-5_000.0..50_000.0),
        rng.random_range(0.0..30.0_f64).round(),
        rng.random_range(0.0..1.0),
        rng.random_range(0.0..6.0_f64).floor(),
        rng.random_range(300.0..850.0_f64).round(),
        rng.random_range(0.0..100_000.0),
    ];
    Row { numbers, region: REGIONS[rng.random_range(0..REGIONS.len())], plan: PLANS[rng.random_range(0..PLANS.len())] }
}

/// The label a noisy rule gives, so the trees have something to learn.
fn label(r: &Row, rng: &mut StdRng) -> &'static str {
    let n = &r.numbers;
    let mut risk = (n[4] - 0.5) * 3.0 + n[5] * 0.6 - (n[6] - 575.0) / 90.0 + n[7] / n[1].max(1.0) - n[3] / 15.0;
    risk += match r.region {
        "south" => 0.4,
        "east" => -0.3,
        _ => 0.0,
    };
    risk += if matches!(r.plan, "enterprise" | "team") { -0.8 } else { 0.0 };
    if risk + rng.random_range(-1.0..1.0) > 0.0 { "bad" } else { "good" }
}

fn model() -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(7);
    let rows: Vec<Row> = (0..5_000).map(|_| row(&mut rng)).collect();
    let labels: Vec<String> = rows.iter().map(|r| label(r, &mut rng).to_string()).collect();
    let mut features: Vec<Feature> = NUMERICAL
        .iter()
        .enumerate()
        .map(|(j, name)| Feature::numerical(*name, rows.iter().map(|r| r.numbers[j]).collect()))
        .collect();
    features.push(Feature::categorical("region", rows.iter().map(|r| Some(r.region.to_string())).collect()));
    features.push(Feature::categorical("plan", rows.iter().map(|r| Some(r.plan.to_string())).collect()));
    let data = TrainData { features: Data::new(features).unwrap(), target: Target::Classes(labels) };
    let spec = TrainSpec::GradientBoosting(GradientBoostingSpec { n_trees: 100, max_depth: 3, ..Default::default() });
    anchorwatch_trainer::train(&spec, &data).expect("train the benchmark model").to_onnx()
}

fn record(r: &Row) -> Value {
    let mut features = serde_json::Map::new();
    for (name, v) in NUMERICAL.iter().zip(r.numbers) {
        features.insert((*name).into(), json!(v));
    }
    features.insert("region".into(), json!(r.region));
    features.insert("plan".into(), json!(r.plan));
    json!({ "features": features })
}

/// A few different request bodies of `batch` rows each: a single record for 1, an array otherwise.
fn bodies(batch: usize) -> Vec<bytes::Bytes> {
    let mut rng = StdRng::seed_from_u64(batch as u64);
    (0..32)
        .map(|_| {
            let body = if batch == 1 {
                record(&row(&mut rng))
            } else {
                Value::Array((0..batch).map(|_| record(&row(&mut rng))).collect())
            };
            bytes::Bytes::from(serde_json::to_vec(&body).unwrap())
        })
        .collect()
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(binary: &Path, capture: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("bench.toml");
        std::fs::write(&cfg, config(capture)).unwrap();
        let mut child = Command::new(binary)
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RUST_LOG", "warn,anchorwatch=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start anchorwatch");
        // The log is drained for the whole run so the server never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) =
                    serde_json::from_str::<Value>(&line).ok().and_then(|v| v.get("addr")?.as_str().map(str::to_string))
                {
                    let _ = tx.send(a);
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("anchorwatch did not start");
        Self { child, base: format!("http://{addr}"), _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads and promotes the model; exits with the server's message when it cannot serve it.
    fn serve(&self, onnx: &[u8]) {
        let client = reqwest::blocking::Client::new();
        let post = |path: &str, ct: &str, body: Vec<u8>| {
            let r = client.post(self.url(path)).header("content-type", ct).body(body).send().unwrap();
            (r.status().as_u16(), r.text().unwrap_or_default())
        };
        let (status, body) = post("/v1/models/bench/versions", "application/octet-stream", onnx.to_vec());
        if status != 201 {
            eprintln!(
                "upload refused ({status}): {body}\nONNX Runtime missing? run `make setup-onnxruntime` or set ORT_DYLIB_PATH"
            );
            std::process::exit(1);
        }
        let (status, body) = post("/v1/models/bench/versions/1/promote", "application/json", b"{}".to_vec());
        assert_eq!(status, 200, "promote: {body}");
        let ready = client.get(self.url("/v2/models/bench/ready")).send().unwrap().status().as_u16();
        assert_eq!(ready, 200, "the model is not ready after promotion");
    }

    /// User plus system CPU seconds the server has used.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
        if f.len() < 13 { 0.0 } else { (f[11] + f[12]) / clock_ticks() }
    }

    /// A counter or histogram sum from `/metrics`, summed over its label sets.
    fn metric(&self, name: &str) -> f64 {
        let text = reqwest::blocking::get(self.url("/metrics")).and_then(|r| r.text()).unwrap_or_default();
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What one (batch, capture) run measured.
struct Run {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    server_cpu: f64,
}

impl Run {
    fn rows_per_s(&self, batch: usize) -> f64 {
        (self.requests * batch) as f64 / self.seconds
    }
    fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1000.0
    }
    /// Server CPU microseconds per predicted row.
    fn cpu_us_per_row(&self, batch: usize) -> f64 {
        self.server_cpu * 1e6 / (self.requests * batch).max(1) as f64
    }
}

/// `CLIENTS` keep-alive clients in a closed loop: warm-up, then every request's latency for `MEASURE`.
async fn drive(server: &Server, batch: usize) -> Run {
    let url = server.url("/v1/models/bench/predict");
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let bodies = bodies(batch);
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let deadline = measure_from + MEASURE;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                let mut i = c;
                loop {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break;
                    }
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(bodies[i % bodies.len()].clone())
                        .send()
                        .await;
                    let ok = match r {
                        Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let done = Instant::now();
                    i += CLIENTS;
                    if sent < measure_from || done > deadline {
                        continue;
                    }
                    if ok {
                        latencies.push(done - sent);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_from = server.cpu_seconds();
    tokio::time::sleep_until(deadline.into()).await;
    let server_cpu = server.cpu_seconds() - cpu_from;
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    Run { requests: latencies.len(), errors, seconds: MEASURE.as_secs_f64(), latencies, server_cpu }
}

fn main() {
    let started = Instant::now();
    let onnx = model();
    println!(
        "anchorwatch predictor benchmark: POST /v1/models/{{model}}/predict, gradient boosting (100 trees, depth 3; \
         8 numerical + 2 categorical features, {} KiB ONNX, trained in {:.1} s)",
        onnx.len() / 1024,
        started.elapsed().as_secs_f64()
    );
    println!(
        "server defaults: pool_size = 2 sessions, intra_threads = 1, collector sync = \"always\"; \
         {CLIENTS} keep-alive clients in a closed loop on one load-generator thread, \
         {} s warm-up + {} s measured per row",
        WARMUP.as_secs(),
        MEASURE.as_secs()
    );
    println!(
        "server and load generator share this machine ({} cores): the figures are what one box does with both",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    // Other work on the machine (a build) moves every figure: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average before the run (1, 5, 15 min): {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // What runs: this build with capture on and off, and, with BASELINE_BIN, another build (an
    // earlier commit's binary) with capture on, in the same run so the two compare fairly.
    let this = PathBuf::from(env!("CARGO_BIN_EXE_anchorwatch"));
    let mut setups = vec![("on", true, this.clone()), ("off", false, this)];
    if let Some(baseline) = std::env::var_os("BASELINE_BIN") {
        println!("baseline: {} (capture on)", Path::new(&baseline).display());
        setups.push(("baseline", true, PathBuf::from(baseline)));
    }
    let mut results: Vec<(usize, &str, Run)> = Vec::new();
    let mut writes = (f64::NAN, f64::NAN);
    for (label, capture, binary) in &setups {
        let server = Server::start(binary, *capture);
        server.serve(&onnx);
        for batch in BATCHES {
            results.push((batch, label, rt.block_on(drive(&server, batch))));
        }
        if *capture {
            let dropped = server.metric("anchorwatch_predictor_capture_dropped_total");
            if dropped > 0.0 {
                println!("note ({label}): {dropped} rows were dropped under this load (counted, not captured)");
            }
        }
        if *label == "on" {
            writes = (
                server.metric("anchorwatch_predictor_capture_seconds_sum"),
                server.metric("anchorwatch_predictor_capture_seconds_count"),
            );
        }
    }

    println!();
    println!(
        "{:>6} {:>8} {:>10} {:>11} {:>9} {:>9} {:>13} {:>7}",
        "batch", "capture", "rows/s", "requests/s", "p50 ms", "p99 ms", "CPU µs/row", "errors"
    );
    for (batch, label, run) in &results {
        println!(
            "{batch:>6} {label:>8} {:>10.0} {:>11.0} {:>9.2} {:>9.2} {:>13.1} {:>7}",
            run.rows_per_s(*batch),
            run.requests_per_s(),
            run.quantile_ms(0.50),
            run.quantile_ms(0.99),
            run.cpu_us_per_row(*batch),
            run.errors
        );
    }
    let find = |batch: usize, label: &str| results.iter().find(|(b, l, _)| *b == batch && *l == label).map(|r| &r.2);
    let compare = |title: &str, a: &str, b: &str| {
        if find(BATCHES[0], a).is_none() || find(BATCHES[0], b).is_none() {
            return;
        }
        println!();
        println!("{title}:");
        for batch in BATCHES {
            let (Some(x), Some(y)) = (find(batch, a), find(batch, b)) else { return };
            println!(
                "  batch {batch:>2}: throughput {:.2}× ({:+.1}%), p50 {:+.2} ms, p99 {:+.2} ms, server CPU {:+.1} µs/row",
                x.rows_per_s(batch) / y.rows_per_s(batch),
                (x.rows_per_s(batch) / y.rows_per_s(batch) - 1.0) * 100.0,
                x.quantile_ms(0.50) - y.quantile_ms(0.50),
                x.quantile_ms(0.99) - y.quantile_ms(0.99),
                x.cpu_us_per_row(batch) - y.cpu_us_per_row(batch)
            );
        }
    };
    compare("capture's cost (on against off)", "on", "off");
    compare("the baseline's capture cost (baseline on against this build off)", "baseline", "off");
    compare("this build against the baseline, capture on", "on", "baseline");
    println!();
    println!(
        "  server side: {:.0} capture writes (WAL append + fsync, one per batch of requests), {:.2} ms each on average \
         (anchorwatch_predictor_capture_seconds, both batch sizes, warm-up included)",
        writes.1,
        writes.0 / writes.1.max(1.0) * 1000.0
    );
}

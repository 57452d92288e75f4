//! Ingest throughput and memory: starts the real binary (release build) on a temporary store and
//! drives it over loopback with JSON (1 and 100 rows a request) and Arrow IPC (10k rows a batch).
//! Prints rows/s and the server's peak RSS for each. Run with `make bench-ingest`
//! (`cargo bench --bench ingest`). Not a test: the figures depend on the machine.
//!
//! The load generator runs on the same machine and competes with the server for the CPU; the
//! figures are what one box does with both.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray, Float64Array, StringArray};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

const SECONDS: u64 = 8;

fn record(i: usize) -> Value {
    let region = ["north", "south", "east", "west"][i % 4];
    json!({
        "features": {"age": 20 + i % 50, "income": 30000.5 + i as f64, "region": region, "vip": i % 7 == 0},
        "prediction": if i % 3 == 0 { "bad" } else { "good" },
        "scores": {"good": 0.7, "bad": 0.3}
    })
}

fn arrow_body(rows: usize) -> Vec<u8> {
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("age", Arc::new(Float64Array::from_iter_values((0..rows).map(|i| (20 + i % 50) as f64)))),
        ("income", Arc::new(Float64Array::from_iter_values((0..rows).map(|i| 30000.5 + i as f64)))),
        (
            "region",
            Arc::new(StringArray::from_iter_values((0..rows).map(|i| ["north", "south", "east", "west"][i % 4]))),
        ),
        ("vip", Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 7 == 0))))),
        (
            "prediction",
            Arc::new(StringArray::from_iter_values((0..rows).map(|i| if i % 3 == 0 { "bad" } else { "good" }))),
        ),
        ("score_good", Arc::new(Float64Array::from_iter_values((0..rows).map(|_| 0.7)))),
        ("score_bad", Arc::new(Float64Array::from_iter_values((0..rows).map(|_| 0.3)))),
    ];
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    buf
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn drive(url: &str, content_type: &str, body: Vec<u8>, rows_per_request: u64, connections: usize) -> (f64, u64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().unwrap();
    let rows = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let body = bytes::Bytes::from(body);
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, body, rows, rejected) =
                (client.clone(), url.to_string(), body.clone(), rows.clone(), rejected.clone());
            let content_type = content_type.to_string();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let r = client
                        .post(&url)
                        .header("content-type", &content_type)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    if r.status() == 200 {
                        let _ = r.bytes().await;
                        rows.fetch_add(rows_per_request, Ordering::Relaxed);
                    } else {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        let _ = r.bytes().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (rows.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(), rejected.load(Ordering::Relaxed))
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bench.toml");
    std::fs::write(
        &cfg,
        r#"[store]
root = "store"
[server]
max_body_bytes = "64MiB"
[collector]
sync = "always"
[[models]]
name = "bench"
[models.schema]
prediction = "categorical"
scores = ["good", "bad"]
features = [
  { name = "age", kind = "numerical" },
  { name = "income", kind = "numerical" },
  { name = "region", kind = "categorical" },
  { name = "vip", kind = "boolean" },
]
"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anchorwatch"))
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn,anchorwatch=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start anchorwatch");
    let mut addr = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(a) =
            serde_json::from_str::<Value>(&line).ok().and_then(|v| v.get("addr")?.as_str().map(str::to_string))
        {
            addr = a;
            break;
        }
    }
    assert!(!addr.is_empty(), "anchorwatch did not start");
    let url = format!("http://{addr}/v1/models/bench/predictions");
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let one = serde_json::to_vec(&record(0)).unwrap();
    let hundred = serde_json::to_vec(&Value::Array((0..100).map(record).collect())).unwrap();
    let scenarios: Vec<(&str, &str, Vec<u8>, u64, usize, f64)> = vec![
        ("JSON, 1 row a request", "application/json", one, 1, 64, 0.0),
        ("JSON, 100 rows a request", "application/json", hundred, 100, 16, 150_000.0),
        (
            "Arrow IPC, 10k rows a batch",
            "application/vnd.apache.arrow.stream",
            arrow_body(10_000),
            10_000,
            4,
            1_000_000.0,
        ),
    ];
    println!(
        "anchorwatch ingest benchmark: {SECONDS} s per scenario, sync = \"always\", server and load generator on one machine ({} cores)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "{:<30} {:>8} {:>14} {:>10} {:>16} {:>8}",
        "scenario", "conns", "rows/s", "429s", "server peak RSS", "goal"
    );
    for (name, content_type, body, rows, connections, goal) in scenarios {
        let (rate, rejected) = rt.block_on(drive(&url, content_type, body, rows, connections));
        let goal = if goal > 0.0 {
            format!("{}{:.0}k", if rate >= goal { "met ≥" } else { "MISSED ≥" }, goal / 1000.0)
        } else {
            "-".into()
        };
        println!("{name:<30} {connections:>8} {rate:>14.0} {rejected:>10} {:>12.1} MiB {goal:>8}", peak_rss_mib(pid));
    }
    let rss = peak_rss_mib(pid);
    println!(
        "server peak RSS over the whole run: {rss:.1} MiB (goal < 200 MiB: {})",
        if rss < 200.0 { "met" } else { "MISSED" }
    );
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
}

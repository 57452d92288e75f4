//! Starting the real `anchorwatch` binary for end-to-end tests, and talking to it over loopback.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod credit;

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_anchorwatch")
}

/// The repository's root (where `make test` puts `.venv`).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the tests run under CI (`CI=true` or `CI=1`), where a missing tool fails a test
/// instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A tool the running test needs is missing: under CI a failure, elsewhere one printed line in
/// the same words for every test (named after the test's thread, which libtest names after the
/// test). The caller returns, or leaves out the part that needs the tool, after this.
pub fn skip(why: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    assert!(!in_ci(), "{test}: {why} (CI=true, so this is a failure, not a skip)");
    eprintln!("SKIPPED {test}: {why}");
}

/// A program in the project's `.venv` (`make test` installs tests/requirements.txt there); the
/// path whether or not it exists.
pub fn venv_bin(name: &str) -> PathBuf {
    root().join(".venv/bin").join(name)
}

/// `.venv`'s Python, which must be there (`make test` installs it).
pub fn python() -> PathBuf {
    let python = venv_bin("python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (it installs tests/requirements.txt into .venv)",
        python.display()
    );
    python
}

/// The ONNX models of tests/fixtures/make_models.py (scikit-learn and skl2onnx, with `.venv`'s
/// Python), made in `dir/models`; `None` after a [`skip`] when they cannot be made.
pub fn make_models(dir: &Path) -> Option<PathBuf> {
    let python = venv_bin("python");
    let out = dir.join("models");
    let status = Command::new(&python)
        .arg(root().join("tests/fixtures/make_models.py"))
        .arg(&out)
        .stdout(Stdio::null())
        .status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        skip(&format!(
            "{} tests/fixtures/make_models.py failed ({status:?}); run `make test` (or `make setup-python`) to \
             install scikit-learn, skl2onnx and onnxruntime into .venv",
            python.display()
        ));
        return None;
    }
    Some(out)
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A config for one model `credit` with a numerical, a categorical and a boolean feature, two
/// scores, categorical predictions and labels. `extra` is appended (more sections).
pub fn config(dir: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"[store]
root = "store"

[collector]
flush_interval = "1s"

[[models]]
name = "credit"
[models.schema]
prediction = "categorical"
scores = ["good", "bad"]
features = [
  {{ name = "age", kind = "numerical" }},
  {{ name = "region", kind = "categorical" }},
  {{ name = "vip", kind = "boolean" }},
]
{extra}"#
    );
    let path = dir.join("anchorwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running server process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub config: PathBuf,
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Server {
    /// Starts `anchorwatch serve` on a free port and waits (up to 60 s) until it is ready.
    pub fn start(config: &Path) -> Self {
        Self::start_with_env(config, &[])
    }

    /// As [`Server::start`], with extra environment variables.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary())
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start anchorwatch");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if let Some(addr) = v.get("addr").and_then(Value::as_str) {
                        let _ = tx.send(addr.to_string());
                    }
                }
                lines.push(line);
            }
            lines
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let log = reader.join().unwrap_or_default().join("\n");
                panic!("anchorwatch did not start listening within 60 s; its log:\n{log}");
            }
        };
        let server = Self { child, base: format!("http://{addr}"), config: config.to_path_buf(), stderr: Some(reader) };
        wait_until(Duration::from_secs(30), "readyz", || {
            client().get(server.url("/readyz")).send().map(|r| r.status().is_success()).unwrap_or(false)
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a body with a content type; returns status and parsed JSON (Null when not JSON).
    pub fn post(&self, path: &str, content_type: &str, body: impl Into<reqwest::blocking::Body>) -> (u16, Value) {
        let r = client().post(self.url(path)).header("content-type", content_type).body(body).send().expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post(path, "application/json", serde_json::to_vec(body).unwrap())
    }

    /// Runs SQL through `/v1/query` and returns the rows.
    pub fn query(&self, sql: &str) -> Vec<Value> {
        let (status, answer) = self.post_json("/v1/query", &serde_json::json!({"model": "credit", "sql": sql}));
        assert_eq!(status, 200, "query {sql} failed: {answer}");
        answer["rows"].as_array().unwrap().clone()
    }

    pub fn flush(&self) {
        let (status, answer) = self.post_json("/v1/flush", &serde_json::json!({}));
        assert_eq!(status, 200, "flush failed: {answer}");
    }

    pub fn metrics(&self) -> String {
        client().get(self.url("/metrics")).send().unwrap().text().unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit; returns the log.
    pub fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "anchorwatch exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "anchorwatch did not stop within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows the server's log: that is where the cause usually is.
        if std::thread::panicking() {
            if let Some(log) = self.stderr.take().and_then(|t| t.join().ok()) {
                eprintln!("--- anchorwatch log ---\n{}\n--- end of log ---", log.join("\n"));
            }
        }
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// Polls `ready` until it holds, failing the test at the deadline.
pub fn wait_until(deadline: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !ready() {
        assert!(Instant::now() < end, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Every Parquet file under `dir`, recursively.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Reads every row of every Parquet file under `dir` with the parquet crate (not DataFusion).
pub fn read_parquet(dir: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    parquet_files(dir)
        .into_iter()
        .flat_map(|path| {
            let file = std::fs::File::open(&path).unwrap();
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A batch as an Arrow IPC stream body.
pub fn ipc(batch: &arrow::record_batch::RecordBatch) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    drop(w);
    buf
}

/// ONNX Runtime from the project's `.venv` (what `make setup-onnxruntime` installs); `None`, with
/// a printed skip, when it is not there, except under CI (`CI=true`), where that fails the test.
pub fn onnxruntime() -> Option<PathBuf> {
    let found =
        std::fs::read_dir(root().join(".venv/lib")).ok().and_then(|mut dirs| {
            dirs.find_map(|d| {
                let capi = d.ok()?.path().join("site-packages/onnxruntime/capi");
                std::fs::read_dir(capi).ok()?.flatten().map(|e| e.path()).find(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so."))
                })
            })
        });
    if found.is_none() {
        skip("ONNX Runtime is not in .venv; run `make setup-onnxruntime`");
    }
    found
}

/// Debian's Chromium, which the browser tests drive headless.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether Chromium is there to drive; its absence is a skip (a failure in CI).
pub fn chromium_available() -> bool {
    let there = Path::new(CHROMIUM).exists();
    if !there {
        skip(&format!("{CHROMIUM} is missing; install it with `apt-get install -y --no-install-recommends chromium`"));
    }
    there
}

/// Runs a fresh headless Chromium on `url` with `extra` flags; returns (stdout, stderr).
pub fn chromium(url: &str, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes on threads so a chatty stderr cannot block the browser.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (out.join().unwrap().unwrap(), err.join().unwrap().unwrap())
}

/// The console messages (and uncaught exceptions) Chromium logged to stderr.
pub fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect()
}

/// Accepts one HTTP request, answers 200, and returns its JSON body.
pub fn receive_one(listener: std::net::TcpListener) -> Value {
    use std::io::{BufRead, BufReader, Read, Write};
    let (mut stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// `anchorwatch proxy` in remote mode: in front of `upstream` (a URL), sending the rows of `model`
/// to the anchorwatch at `collector`, spooling in `spool`, with `extra` arguments; its metrics and
/// health on a port of their own. Started and ready (`/readyz`); killed when dropped.
pub struct RemoteProxy {
    child: Child,
    /// `http://127.0.0.1:<port>`: where clients send requests.
    pub base: String,
    /// `127.0.0.1:<port>` of `/metrics` and `/readyz`.
    pub metrics_addr: String,
}

impl RemoteProxy {
    pub fn start(upstream: &str, model: &str, collector: &str, spool: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(binary())
            .args(["--log-format", "json", "proxy", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--upstream", upstream, "--model", model, "--collector", collector])
            .arg("--spool-dir")
            .arg(spool)
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("ANCHORWATCH_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start anchorwatch proxy");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let (Some(a), Some(m)) = (v["addr"].as_str(), v["metrics_addr"].as_str())
                {
                    let _ = tx.send((a.to_string(), m.to_string()));
                }
            }
        });
        let (addr, metrics_addr) = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("anchorwatch proxy did not start within 60 s");
        });
        let proxy = Self { child, base: format!("http://{addr}"), metrics_addr };
        wait_until(Duration::from_secs(30), "proxy readyz", || {
            client().get(format!("http://{}/readyz", proxy.metrics_addr)).send().is_ok_and(|r| r.status().is_success())
        });
        proxy
    }
}

impl Drop for RemoteProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One recorded HTTP request.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{} sent invalid JSON: {e}", self.path))
    }
}

/// An HTTP server on loopback that records every request and answers 200.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start() -> Self {
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
                    let recorded = recorded.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
                        let headers = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        recorded.lock().unwrap().push(Received { path: parts.uri.path().to_string(), headers, body });
                        "ok"
                    }
                });
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self { addr: rx.recv().unwrap(), requests }
    }

    pub fn at(&self, path: &str) -> Vec<Received> {
        self.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }
}

//! End-to-end tests of `anchorwatch proxy`: the real binary between a real client (reqwest) and a
//! real upstream (hyper, in this test process, HTTP/1.1 or h2c), storing rows through a local
//! collector or a central `anchorwatch serve`. Everything talks over loopback on free ports.

use crate::support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use support::{binary, client, free_port, wait_until};

type UpBody = UnsyncBoxBody<Bytes, Infallible>;

// ---------------------------------------------------------------------------------------------
// The upstream: a predictor written for the test, answering every shape deterministically.
// ---------------------------------------------------------------------------------------------

/// What the fake model says for one row: a label and the two scores. Scores are exact in binary
/// so that they survive any JSON round trip unchanged.
fn model(age: f64) -> (&'static str, f64, f64) {
    if age > 40.0 { ("good", 0.75, 0.25) } else { ("bad", 0.125, 0.875) }
}

fn age_of(features: &Value) -> f64 {
    features["age"].as_f64().unwrap_or(0.0)
}

/// The upstream's answer to a predict request, by route.
fn predict_answer(path: &str, req: &Value) -> Value {
    match path {
        "/v2/models/credit/infer" => {
            let inputs = req["inputs"].as_array().cloned().unwrap_or_default();
            let ages: Vec<f64> = inputs
                .iter()
                .find(|t| t["name"] == "age")
                .and_then(|t| t["data"].as_array())
                .map(|d| d.iter().flat_map(|v| v.as_array().cloned().unwrap_or_else(|| vec![v.clone()])))
                .map(|d| d.map(|v| v.as_f64().unwrap_or(0.0)).collect())
                .unwrap_or_default();
            let labels: Vec<&str> = ages.iter().map(|a| model(*a).0).collect();
            let probs: Vec<f64> = ages.iter().flat_map(|a| [model(*a).1, model(*a).2]).collect();
            json!({"model_name": "credit", "model_version": "7", "id": req["id"], "outputs": [
                {"name": "label", "shape": [ages.len()], "datatype": "BYTES", "data": labels},
                {"name": "probs", "shape": [ages.len(), 2], "datatype": "FP64", "data": probs},
            ]})
        }
        "/v1/models/credit:predict" => {
            let predictions: Vec<Value> = req["instances"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|i| {
                    let age = if i.is_array() { i[0].as_f64().unwrap_or(0.0) } else { age_of(i) };
                    Value::from(model(age).0)
                })
                .collect();
            json!({ "predictions": predictions })
        }
        "/custom" => {
            let rows: Vec<Value> = req["data"]["rows"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    let (label, good, bad) = model(r["person"]["age"].as_f64().unwrap_or(0.0));
                    json!({"label": label, "p": {"good": good, "bad": bad}})
                })
                .collect();
            json!({ "result": rows })
        }
        _ => match req {
            Value::Array(records) => Value::Array(
                records
                    .iter()
                    .map(|r| {
                        let (label, good, bad) = model(age_of(&r["features"]));
                        json!({"prediction": label, "scores": [good, bad]})
                    })
                    .collect(),
            ),
            one => {
                let (label, good, bad) = model(age_of(&one["features"]));
                json!({"prediction": label, "scores": {"good": good, "bad": bad}})
            }
        },
    }
}

fn full(body: impl Into<Bytes>) -> UpBody {
    Full::new(body.into()).boxed_unsync()
}

fn binary_body() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect()
}

async fn answer(req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_string();
    let seen_request_id = req.headers().get("x-request-id").cloned();
    let seen_hop = req.headers().contains_key("x-hop");
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut response = match path.as_str() {
        "/json" => Response::builder()
            .header("content-type", "application/json")
            .header("x-upstream", "yes")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(full(r#"{"hello": "world", "n": [1, 2.5, null]}"#)),
        "/binary" => Response::builder().header("content-type", "application/octet-stream").body(full(binary_body())),
        "/chunked" => {
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> =
                (0..20).map(|i| Ok(Frame::data(Bytes::from(format!("chunk {i};").repeat(100))))).collect();
            Response::builder()
                .header("content-type", "text/plain")
                .body(StreamBody::new(futures::stream::iter(chunks)).boxed_unsync())
        }
        "/echo" => Response::builder()
            .header("content-type", "application/octet-stream")
            .header("x-seen-hop", if seen_hop { "yes" } else { "no" })
            .body(full(body)),
        "/status/500" => Response::builder().status(500).header("x-why", "boom").body(full("internal trouble")),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(20)).await;
            Response::builder().body(full("late"))
        }
        _ => match serde_json::from_slice::<Value>(&body) {
            Ok(req) => Response::builder()
                .header("content-type", "application/json")
                .body(full(serde_json::to_vec(&predict_answer(&path, &req)).unwrap())),
            Err(_) => Response::builder().header("content-type", "text/plain").body(full("not json, but fine")),
        },
    }
    .unwrap();
    if let Some(id) = seen_request_id {
        response.headers_mut().insert("x-seen-request-id", id);
    }
    Ok(response)
}

/// An upstream predictor on loopback, served by its own runtime until dropped.
struct Upstream {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn upstream(http2: bool) -> Upstream {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                let service = hyper::service::service_fn(answer);
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                }
            });
        }
    });
    Upstream { addr, _rt: rt }
}

/// A port nothing listens on (bound, then released).
// ---------------------------------------------------------------------------------------------
// The proxy and central server processes.
// ---------------------------------------------------------------------------------------------

struct Proc {
    child: Child,
    base: String,
    metrics_base: String,
    log: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Proc {
    /// Starts the binary with `args`; waits for the log line carrying `addr` (and, for the proxy,
    /// `metrics_addr`).
    fn start(args: &[String], proxy: bool) -> Self {
        let mut child = Command::new(binary())
            .args(["--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("ANCHORWATCH_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start anchorwatch");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = v.get("addr").and_then(Value::as_str)
                {
                    let metrics = v.get("metrics_addr").and_then(Value::as_str).unwrap_or_default();
                    if !proxy || !metrics.is_empty() {
                        let _ = tx.send((addr.to_string(), metrics.to_string()));
                    }
                }
                lines.push(line);
            }
            lines
        });
        let (addr, metrics) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let log = log.join().unwrap_or_default().join("\n");
                panic!("anchorwatch {args:?} did not start within 60 s; its log:\n{log}");
            }
        };
        let p =
            Self { child, base: format!("http://{addr}"), metrics_base: format!("http://{metrics}"), log: Some(log) };
        let ready = if proxy { format!("{}/readyz", p.metrics_base) } else { p.url("/readyz") };
        wait_until(Duration::from_secs(30), "readyz", || {
            client().get(&ready).send().map(|r| r.status().is_success()).unwrap_or(false)
        });
        p
    }

    fn proxy(args: &[&str]) -> Self {
        let mut all: Vec<String> =
            ["proxy", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"].map(String::from).to_vec();
        all.extend(args.iter().map(|a| a.to_string()));
        Self::start(&all, true)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A metric's value (0 when the series does not exist yet).
    fn metric(&self, series: &str) -> f64 {
        let text = client().get(format!("{}/metrics", self.metrics_base)).send().unwrap().text().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    fn dropped(&self, reason: &str) -> f64 {
        self.metric(&format!("anchorwatch_capture_dropped_total{{reason=\"{reason}\"}}"))
    }

    /// SIGTERM, then waits for a clean exit; returns the log.
    fn stop(mut self) -> Vec<String> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
                assert!(status.success(), "anchorwatch exited with {status}; log:\n{}", log.join("\n"));
                return log;
            }
            assert!(Instant::now() < deadline, "anchorwatch did not stop within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store with the `credit` model (age numerical, region categorical, vip boolean; categorical
/// prediction; scores good and bad).
fn store(dir: &Path) -> PathBuf {
    support::config(dir, "")
}

/// Every stored prediction, read with `anchorwatch query` (the proxy must have stopped: shutdown
/// flushes), keyed by id.
fn stored_rows(config: &Path) -> BTreeMap<String, Value> {
    let out = Command::new(binary())
        .args(["query", "--format", "json", "--max-rows", "100000", "--config"])
        .arg(config)
        .arg("SELECT prediction_id, age, region, vip, prediction, score_good, score_bad FROM predictions")
        .output()
        .unwrap();
    assert!(out.status.success(), "query failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter().map(|r| (r["prediction_id"].as_str().unwrap().to_string(), normalise(&r))).collect()
}

/// A row as stored, with absent columns as null and every number as a float (JSON writers differ
/// on `33` versus `33.0`).
fn normalise(row: &Value) -> Value {
    let keys = ["age", "region", "vip", "prediction", "score_good", "score_bad"];
    let value = |k: &str| match row.get(k) {
        Some(Value::Number(n)) => json!(n.as_f64().unwrap()),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    Value::Object(keys.iter().map(|k| (k.to_string(), value(k))).collect())
}

/// The row the store must hold for features sent and the fake model's answer.
fn expected(age: f64, region: &str, vip: bool, scores: bool) -> Value {
    let (label, good, bad) = model(age);
    let (good, bad) = if scores { (json!(good), json!(bad)) } else { (Value::Null, Value::Null) };
    normalise(
        &json!({"age": age, "region": region, "vip": vip, "prediction": label, "score_good": good, "score_bad": bad}),
    )
}

fn post(url: &str, headers: &[(&str, &str)], body: impl Into<reqwest::blocking::Body>) -> reqwest::blocking::Response {
    let mut r = client().post(url).header("content-type", "application/json").body(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().expect("request through the proxy")
}

fn prediction_id(r: &reqwest::blocking::Response) -> String {
    r.headers().get("x-prediction-id").expect("x-prediction-id").to_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

/// Status, headers that matter and body bytes, as a client sees them.
fn seen(r: reqwest::blocking::Response) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        // The proxy adds an x-request-id upstream, which the test upstream reflects.
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-prediction-id" | "x-seen-request-id"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
        .collect();
    headers.sort();
    (r.status().as_u16(), headers, r.bytes().unwrap().to_vec())
}

fn forwards_unchanged(http2: bool) {
    let up = upstream(http2);
    let dir = tempfile::tempdir().unwrap();
    let config = store(dir.path());
    let upstream_url = format!("http://{}", up.addr);
    let mut args = vec!["--upstream", &upstream_url, "--model", "credit", "--config"];
    let config_arg = config.to_str().unwrap();
    args.push(config_arg);
    args.extend(["--predict-path", "/predict,/echo", "--capture-max-bytes", "64KiB"]);
    if http2 {
        args.push("--upstream-http2");
    }
    let proxy = Proc::proxy(&args);
    // An h2c upstream cannot be asked directly over HTTP/1.1: compare with an HTTP/1.1 twin,
    // whose answers are the same.
    let twin = upstream(false);
    let direct = |path: &str| format!("http://{}{path}", twin.addr);
    for path in ["/json", "/binary", "/chunked"] {
        let want = seen(client().get(direct(path)).send().unwrap());
        let through = client().get(proxy.url(path)).send().unwrap();
        assert!(through.headers().contains_key("x-prediction-id"), "{path}: no x-prediction-id");
        let got = seen(through);
        assert_eq!(got.0, want.0, "{path}: status");
        assert_eq!(got.1, want.1, "{path}: headers");
        assert!(got.2 == want.2, "{path}: body differs ({} vs {} bytes)", got.2.len(), want.2.len());
    }
    // Chunked stays chunked (no Content-Length invented), and both cookies arrive.
    let r = client().get(proxy.url("/chunked")).send().unwrap();
    assert_eq!(r.headers().get("transfer-encoding").map(|v| v.to_str().unwrap()), Some("chunked"));
    let r = client().get(proxy.url("/json")).send().unwrap();
    assert_eq!(r.headers().get_all("set-cookie").iter().count(), 2);

    // A large binary POST on a captured route streams through unchanged (and is not captured);
    // the hop-by-hop header the client named in Connection does not reach the upstream; the
    // client's x-request-id goes upstream and comes back as x-prediction-id.
    let big = binary_body().repeat(4);
    let r = client()
        .post(proxy.url("/echo"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("x-request-id", "client-id-1")
        .body(big.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-seen-hop"], "no");
    assert_eq!(r.headers()["x-seen-request-id"], "client-id-1");
    assert_eq!(r.headers()["x-prediction-id"], "client-id-1");
    assert!(r.bytes().unwrap().to_vec() == big, "large echo differs");
    assert_eq!(proxy.dropped("too_large"), 1.0);
    // Without an id, one is generated (UUIDv7) and also sent upstream.
    let r = client().post(proxy.url("/echo")).body("small").send().unwrap();
    let id = prediction_id(&r);
    assert_eq!(id.len(), 36);
    assert_eq!(r.headers()["x-seen-request-id"].to_str().unwrap(), id);
    assert_eq!(r.bytes().unwrap().as_ref(), b"small");
    assert!(proxy.metric("anchorwatch_proxy_requests_total{code_class=\"2xx\"}") >= 7.0);
    proxy.stop();
}

#[test]
fn forwards_http1_byte_identical() {
    forwards_unchanged(false);
}

#[test]
fn forwards_http2_upstream_byte_identical() {
    forwards_unchanged(true);
}

#[test]
fn upstream_errors_timeouts_and_resets_pass_through() {
    let up = upstream(false);
    let dir = tempfile::tempdir().unwrap();
    let config = store(dir.path());
    let config = config.to_str().unwrap();
    let upstream_url = format!("http://{}", up.addr);
    let proxy = Proc::proxy(&[
        "--upstream",
        &upstream_url,
        "--model",
        "credit",
        "--config",
        config,
        "--upstream-timeout",
        "300ms",
    ]);
    // An upstream 500 reaches the client as sent.
    let want = seen(client().get(format!("{upstream_url}/status/500")).send().unwrap());
    let got = seen(client().get(proxy.url("/status/500")).send().unwrap());
    assert_eq!(got, want);
    // A slow upstream: 504 from the proxy, well before the upstream would answer.
    let r = client().get(proxy.url("/slow")).send().unwrap();
    assert_eq!(r.status(), 504);
    assert!(r.headers().contains_key("x-prediction-id"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert_eq!(proxy.metric("anchorwatch_proxy_requests_total{code_class=\"5xx\"}"), 2.0);
    proxy.stop();

    // Nothing listens upstream: 502.
    let refused = format!("http://127.0.0.1:{}", free_port());
    let proxy = Proc::proxy(&["--upstream", &refused, "--model", "credit", "--config", config]);
    let r = post(&proxy.url("/predict"), &[], r#"{"features": {"age": 50}}"#);
    assert_eq!(r.status(), 502);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "upstream_unavailable");
    assert_eq!(proxy.dropped("upstream_error"), 1.0);
    proxy.stop();

    // The upstream accepts and then resets every connection: 502, not a hang.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let reset_url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            // Read the request head, then close without a word.
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut &stream, &mut buf);
            drop(stream);
        }
    });
    let proxy = Proc::proxy(&["--upstream", &reset_url, "--model", "credit", "--config", config]);
    for _ in 0..3 {
        let r = client().get(proxy.url("/anything")).send().unwrap();
        assert_eq!(r.status(), 502);
    }
    proxy.stop();
}

/// How [`counting_upstream`] treats its connections.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Conn {
    /// Keeps every connection alive.
    KeepAlive,
    /// Answers `Connection: close` and closes after one answer.
    Close,
    /// Answers the first request, then reads the second in full and closes without a word.
    DropSecond,
}

/// A raw HTTP/1.1 upstream answering each request (GETs, or POSTs with a `content-length`) with
/// the number of its connection; returns its URL, the connections accepted and the requests read.
fn counting_upstream(mode: Conn) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (accepted, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (count, read) = (accepted.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let read = read.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                let mut served = 0;
                while let Ok(1) = std::io::Read::read(&mut stream, &mut byte) {
                    head.push(byte[0]);
                    if !head.ends_with(b"\r\n\r\n") {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    let mut body = vec![0u8; length];
                    std::io::Read::read_exact(&mut stream, &mut body).unwrap();
                    head.clear();
                    read.fetch_add(1, Ordering::SeqCst);
                    served += 1;
                    if mode == Conn::DropSecond && served == 2 {
                        break;
                    }
                    let answer = n.to_string();
                    let connection = if mode == Conn::Close { "connection: close\r\n" } else { "" };
                    let answer =
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{connection}\r\n{answer}", answer.len());
                    if std::io::Write::write_all(&mut stream, answer.as_bytes()).is_err() || mode == Conn::Close {
                        break;
                    }
                }
            });
        }
    });
    (url, accepted, requests)
}

#[test]
fn keeps_upstream_connections_alive_and_reopens_closed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = store(dir.path());
    let config = config.to_str().unwrap();
    for close in [false, true] {
        let (url, accepted, _) = counting_upstream(if close { Conn::Close } else { Conn::KeepAlive });
        let proxy = Proc::proxy(&["--upstream", &url, "--model", "credit", "--config", config]);
        // One kept-alive client connection, twenty requests in turn.
        let one = reqwest::blocking::Client::builder().pool_max_idle_per_host(1).build().unwrap();
        let answers: Vec<String> = (0..20)
            .map(|i| {
                let r = one.get(proxy.url(&format!("/n/{i}"))).send().unwrap();
                assert_eq!(r.status(), 200, "request {i} (upstream closes: {close})");
                r.text().unwrap()
            })
            .collect();
        if close {
            // Every answer came on a new upstream connection: none was lost to a closed one.
            let want: Vec<String> = (1..=20).map(|n| n.to_string()).collect();
            assert_eq!(answers, want);
            assert_eq!(accepted.load(Ordering::SeqCst), 20);
        } else {
            // The client connection's upstream connection served them all.
            assert_eq!(answers, vec!["1".to_string(); 20]);
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        }
        proxy.stop();
    }
    // The upstream reads a POST on a kept-alive connection and then drops the connection: the
    // client gets 502, and the POST is not sent again (the upstream may have acted on it).
    let (url, accepted, requests) = counting_upstream(Conn::DropSecond);
    let proxy = Proc::proxy(&["--upstream", &url, "--model", "credit", "--config", config]);
    let one = reqwest::blocking::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    let statuses: Vec<u16> =
        (0..2).map(|_| one.post(proxy.url("/orders")).body("{}").send().unwrap().status().as_u16()).collect();
    assert_eq!(statuses, [200, 502]);
    assert_eq!((accepted.load(Ordering::SeqCst), requests.load(Ordering::SeqCst)), (1, 2));
    proxy.stop();
}

/// The nice value of each thread of process `pid`, by thread name.
#[cfg(target_os = "linux")]
fn thread_nice(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(stat)) =
            (std::fs::read_to_string(dir.join("comm")), std::fs::read_to_string(dir.join("stat")))
        else {
            continue; // the thread ended meanwhile
        };
        // Fields after the parenthesised name: state is field 3, nice field 19.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        out.push((comm.trim().to_string(), fields[16].parse().unwrap()));
    }
    out
}

#[cfg(target_os = "linux")]
#[test]
fn capture_threads_run_at_a_lower_priority_than_the_traffic() {
    let up = upstream(false);
    let dir = tempfile::tempdir().unwrap();
    let config = store(dir.path());
    let config = config.to_str().unwrap();
    let upstream_url = format!("http://{}", up.addr);
    for (flag, want) in [(None, 10), (Some("0"), 0), (Some("19"), 19)] {
        let mut args = vec!["--upstream", &upstream_url, "--model", "credit", "--config", config];
        args.extend(flag.map(|n| ["--capture-nice", n]).into_iter().flatten());
        let proxy = Proc::proxy(&args);
        let flushed = support::parquet_files(dir.path()).len();
        let r = post(&proxy.url("/predict"), &[], r#"{"features": {"age": 41, "region": "north", "vip": true}}"#);
        assert_eq!(r.status(), 200);
        // After a flush to Parquet (every second here), whose blocking work is capture's too.
        wait_until(Duration::from_secs(30), "a flush", || support::parquet_files(dir.path()).len() > flushed);
        let threads = thread_nice(proxy.child.id());
        for name in ["capture", "wal-writer", "flush-credit"] {
            let nice: Vec<i32> = threads.iter().filter(|(n, _)| n == name).map(|(_, v)| *v).collect();
            assert!(
                !nice.is_empty() && nice.iter().all(|v| *v == want),
                "{name}, --capture-nice {flag:?}: {threads:?}"
            );
        }
        // The request path's runtime, its blocking pool included, keeps the traffic's priority.
        let traffic: Vec<i32> = threads.iter().filter(|(n, _)| n == "tokio-rt-worker").map(|(_, v)| *v).collect();
        assert!(!traffic.is_empty() && traffic.iter().all(|v| *v == 0), "{threads:?}");
        proxy.stop();
    }
    // Out of range: a clear error before anything starts.
    let out = Command::new(binary())
        .args(["proxy", "--upstream", &upstream_url, "--model", "credit", "--config", config, "--capture-nice", "20"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--capture-nice: 20 is not a nice value from 0 to 19"), "{stderr}");
}

#[test]
fn captures_every_supported_shape() {
    let up = upstream(false);
    let dir = tempfile::tempdir().unwrap();
    let config = store(dir.path());
    let upstream_url = format!("http://{}", up.addr);
    let proxy = Proc::proxy(&[
        "--upstream",
        &upstream_url,
        "--model",
        "credit",
        "--config",
        config.to_str().unwrap(),
        "--feature-names",
        "age,region,vip",
        "--prediction-output",
        "label",
        "--scores-output",
        "probs",
        "--capture-max-bytes",
        "16KiB",
    ]);
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    let check = |r: reqwest::blocking::Response, path: &str, body: &Value| {
        assert_eq!(r.status(), 200);
        let id = prediction_id(&r);
        let answer: Value = r.json().unwrap();
        assert_eq!(answer, predict_answer(path, body), "{path}: the answer was changed");
        id
    };

    // Open Inference Protocol, id in the body, one row.
    let oip = "/v2/models/credit/infer";
    let body = json!({"id": "oip-1", "inputs": [
        {"name": "age", "shape": [1], "datatype": "FP64", "data": [41.5]},
        {"name": "region", "shape": [1], "datatype": "BYTES", "data": ["north"]},
        {"name": "vip", "shape": [1], "datatype": "BOOL", "data": [true]},
    ]});
    let id = check(post(&proxy.url(oip), &[], body.to_string()), oip, &body);
    assert_eq!(id, "oip-1");
    want.insert(id, expected(41.5, "north", true, true));
    // OIP, a batch of three with the id from x-request-id: ids <id>-0, -1, -2.
    let body = json!({"inputs": [
        {"name": "age", "shape": [3, 1], "datatype": "FP64", "data": [[10.0], [50.0], [70.25]]},
        {"name": "region", "shape": [3], "datatype": "BYTES", "data": ["a", "b", "c"]},
        {"name": "vip", "shape": [3], "datatype": "BOOL", "data": [false, true, false]},
    ]});
    let id = check(post(&proxy.url(oip), &[("x-request-id", "oip-batch")], body.to_string()), oip, &body);
    assert_eq!(id, "oip-batch");
    for (i, (age, region, vip)) in [(10.0, "a", false), (50.0, "b", true), (70.25, "c", false)].into_iter().enumerate()
    {
        want.insert(format!("oip-batch-{i}"), expected(age, region, vip, true));
    }
    // Plain JSON, one record, id from ce-id; scores by class name.
    let body = json!({"features": {"age": 33, "region": "west", "vip": false}});
    let id = check(post(&proxy.url("/predict"), &[("ce-id", "plain-1")], body.to_string()), "/predict", &body);
    assert_eq!(id, "plain-1");
    want.insert(id, expected(33.0, "west", false, true));
    // Plain JSON, an array of records, generated id; scores as a list in declared order.
    let body = json!([
        {"features": {"age": 60, "region": "east", "vip": true}},
        {"features": {"age": 20, "region": "south", "vip": false}},
    ]);
    let id = check(post(&proxy.url("/invocations"), &[], body.to_string()), "/invocations", &body);
    want.insert(format!("{id}-0"), expected(60.0, "east", true, true));
    want.insert(format!("{id}-1"), expected(20.0, "south", false, true));
    // TF-Serving: instances as objects, and as lists named by --feature-names.
    let tf = "/v1/models/credit:predict";
    let body = json!({"instances": [{"age": 45, "region": "x", "vip": true}, {"age": 5, "region": "y", "vip": false}]});
    let id = check(post(&proxy.url(tf), &[("x-request-id", "tf-objects")], body.to_string()), tf, &body);
    want.insert(format!("{id}-0"), expected(45.0, "x", true, false));
    want.insert(format!("{id}-1"), expected(5.0, "y", false, false));
    let body = json!({"instances": [[77, "z", true]]});
    let id = check(post(&proxy.url(tf), &[("x-request-id", "tf-list")], body.to_string()), tf, &body);
    want.insert(id, expected(77.0, "z", true, false));

    // Not captured, but forwarded untouched: a body over the capture limit, and one that is not JSON.
    let big = json!({"features": {"age": 1, "region": "r".repeat(20_000), "vip": false}});
    let r = post(&proxy.url("/predict"), &[], big.to_string());
    assert_eq!(r.json::<Value>().unwrap(), predict_answer("/predict", &big));
    let r = post(&proxy.url("/predict"), &[], "this is not json");
    assert_eq!(r.text().unwrap(), "not json, but fine");
    // A GET on a predict route is forwarded but never captured.
    client().get(proxy.url("/predict")).send().unwrap();

    let rows = want.len() as f64;
    wait_until(Duration::from_secs(30), "every row acknowledged", || {
        proxy.metric("anchorwatch_capture_rows_total") >= rows
    });
    assert_eq!(proxy.dropped("too_large"), 1.0);
    assert_eq!(proxy.dropped("extract_failed"), 1.0);
    assert_eq!(proxy.metric("anchorwatch_capture_rows_total"), rows);
    proxy.stop();
    let got = stored_rows(&config);
    assert_eq!(got, want);
}

#[test]
fn captures_with_json_pointer_mapping() {
    let up = upstream(false);
    let dir = tempfile::tempdir().unwrap();
    let config = store(dir.path());
    let upstream_url = format!("http://{}", up.addr);
    let proxy = Proc::proxy(&[
        "--upstream",
        &upstream_url,
        "--model",
        "credit",
        "--config",
        config.to_str().unwrap(),
        "--predict-path",
        "/custom",
        "--request-rows",
        "/data/rows",
        "--feature",
        "age=/person/age",
        "--feature",
        "region=/person/region",
        "--feature",
        "vip=/vip",
        "--response-rows",
        "/result",
        "--prediction-pointer",
        "/label",
        "--scores-pointer",
        "/p",
        "--model-version",
        "v9",
    ]);
    let body = json!({"data": {"rows": [
        {"person": {"age": 52, "region": "n"}, "vip": true},
        {"person": {"age": 12, "region": "s"}},
    ]}});
    let r = post(&proxy.url("/custom"), &[("x-request-id", "map")], body.to_string());
    assert_eq!(r.json::<Value>().unwrap(), predict_answer("/custom", &body));
    wait_until(Duration::from_secs(30), "rows acknowledged", || proxy.metric("anchorwatch_capture_rows_total") >= 2.0);
    proxy.stop();
    let got = stored_rows(&config);
    let mut missing_vip = expected(12.0, "s", false, true);
    missing_vip["vip"] = Value::Null;
    let want =
        BTreeMap::from([("map-0".to_string(), expected(52.0, "n", true, true)), ("map-1".to_string(), missing_vip)]);
    assert_eq!(got, want);
}

/// The same mapping from a `[proxy]` section of the config file; flags still win over it (the
/// section's `listen` is an address this machine cannot bind, and the flag replaces it).
#[test]
fn takes_its_settings_from_a_proxy_section() {
    let up = upstream(false);
    let dir = tempfile::tempdir().unwrap();
    let section = format!(
        r#"
[proxy]
listen = "192.0.2.1:8081"
upstream = "http://{}"
model = "credit"
predict_paths = ["/custom"]

[proxy.extract]
model_version = "v9"

[proxy.extract.mapping]
request_rows = "/data/rows"
features = [["age", "/person/age"], ["region", "/person/region"], ["vip", "/vip"]]
response_rows = "/result"
prediction = "/label"
scores = "/p"
"#,
        up.addr
    );
    let config = support::config(dir.path(), &section);
    let proxy = Proc::proxy(&["--config", config.to_str().unwrap()]);
    let body = json!({"data": {"rows": [{"person": {"age": 52, "region": "n"}, "vip": true}]}});
    let r = post(&proxy.url("/custom"), &[("x-request-id", "sec")], body.to_string());
    assert_eq!(r.json::<Value>().unwrap(), predict_answer("/custom", &body));
    wait_until(Duration::from_secs(30), "rows acknowledged", || proxy.metric("anchorwatch_capture_rows_total") >= 1.0);
    proxy.stop();
    assert_eq!(stored_rows(&config), BTreeMap::from([("sec".to_string(), expected(52.0, "n", true, true))]));

    // `serve` accepts the same file; a mistake in the section is named.
    let out = Command::new(binary()).args(["check-config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = support::config(dir.path(), "[proxy]\nupstreem = \"http://x\"\n");
    let out =
        Command::new(binary()).args(["proxy", "--config"]).arg(&bad).env_remove("ANCHORWATCH_CONFIG").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("[proxy]") && err.contains("upstreem"), "{err}");
}

/// A central collector for remote mode that holds every POST until released, counting them.
struct StallingCollector {
    addr: SocketAddr,
    posts: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
    _rt: tokio::runtime::Runtime,
}

fn stalling_collector() -> StallingCollector {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let posts = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let counter = posts.clone();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let counter = counter.clone();
            let released = released.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let counter = counter.clone();
                    let mut released = released.clone();
                    async move {
                        let rows = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let n = serde_json::from_slice::<Vec<Value>>(&rows).map(|v| v.len()).unwrap_or(0);
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(StatusCode::OK)
                                .body(full(json!({"accepted": n}).to_string()))
                                .unwrap(),
                        )
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    StallingCollector { addr, posts, release, _rt: rt }
}

#[test]
fn full_capture_queue_drops_and_counts_without_touching_traffic() {
    let up = upstream(false);
    let central = stalling_collector();
    let spool = tempfile::tempdir().unwrap();
    let upstream_url = format!("http://{}", up.addr);
    let collector_url = format!("http://{}", central.addr);
    let proxy = Proc::proxy(&[
        "--upstream",
        &upstream_url,
        "--model",
        "credit",
        "--collector",
        &collector_url,
        "--collector-timeout",
        "60s",
        "--spool-dir",
        spool.path().to_str().unwrap(),
        "--capture-queue",
        "1",
    ]);
    let send = |i: usize| {
        let body = json!({"features": {"age": i, "region": "q", "vip": false}});
        let r = post(&proxy.url("/predict"), &[], body.to_string());
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().unwrap(), predict_answer("/predict", &body), "request {i} was changed");
    };
    // The first exchange reaches the worker, whose POST the collector holds.
    send(0);
    wait_until(Duration::from_secs(30), "the first batch at the collector", || {
        central.posts.load(Ordering::SeqCst) == 1
    });
    // The next one fills the queue (capacity 1); the eight after it are dropped, traffic untouched.
    for i in 1..10 {
        send(i);
    }
    assert_eq!(proxy.dropped("queue_full"), 8.0);
    assert_eq!(proxy.metric("anchorwatch_capture_queue_depth"), 1.0);
    central.release.send(true).unwrap();
    wait_until(Duration::from_secs(30), "both kept exchanges delivered", || {
        proxy.metric("anchorwatch_capture_rows_total") == 2.0
    });
    assert_eq!(central.posts.load(Ordering::SeqCst), 2);
    assert_eq!(proxy.metric("anchorwatch_proxy_requests_total{code_class=\"2xx\"}"), 10.0);
    proxy.stop();
}

/// A central `anchorwatch serve` on a given address.
fn central(config: &Path, listen: &str) -> Proc {
    let args: Vec<String> =
        vec!["serve".into(), "--listen".into(), listen.into(), "--config".into(), config.display().to_string()];
    Proc::start(&args, false)
}

fn central_rows(central: &Proc) -> Vec<Value> {
    let post = |path: &str, body: Value| {
        let r = client().post(central.url(path)).json(&body).send().unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json::<Value>().unwrap()
    };
    post("/v1/flush", json!({}));
    let answer = post(
        "/v1/query",
        json!({"model": "credit", "sql": "SELECT prediction_id, age, region, vip, prediction, score_good, score_bad FROM predictions"}),
    );
    answer["rows"].as_array().unwrap().clone()
}

#[test]
fn remote_mode_spools_while_the_central_service_is_down() {
    let up = upstream(false);
    let dir = tempfile::tempdir().unwrap();
    let config = store(dir.path());
    let spool = dir.path().join("spool");
    let port = free_port();
    let central_addr = format!("127.0.0.1:{port}");
    let upstream_url = format!("http://{}", up.addr);
    let collector_url = format!("http://{central_addr}");
    let proxy = Proc::proxy(&[
        "--upstream",
        &upstream_url,
        "--model",
        "credit",
        "--collector",
        &collector_url,
        "--spool-dir",
        spool.to_str().unwrap(),
        "--collector-max-backoff",
        "200ms",
    ]);
    let mut want = BTreeMap::new();
    let mut send = |i: usize| {
        let body = json!({"features": {"age": i, "region": "r", "vip": i.is_multiple_of(2)}});
        let id = format!("remote-{i}");
        let r = post(&proxy.url("/predict"), &[("x-request-id", &id)], body.to_string());
        assert_eq!(r.json::<Value>().unwrap(), predict_answer("/predict", &body));
        want.insert(id, expected(i as f64, "r", i.is_multiple_of(2), true));
    };
    // The central service is down: rows wait in the spool.
    for i in 0..5 {
        send(i);
    }
    let spooled_lines = || -> usize {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default().lines().count())
                    .sum()
            })
            .unwrap_or(0)
    };
    wait_until(Duration::from_secs(30), "five exchanges spooled", || spooled_lines() == 5);
    assert!(proxy.metric("anchorwatch_proxy_spool_bytes") > 0.0);
    assert!(proxy.metric("anchorwatch_proxy_collector_errors_total") >= 1.0);
    // It comes up: the spool drains into it, and new rows go straight through.
    let server = central(&config, &central_addr);
    wait_until(Duration::from_secs(30), "spool delivered", || proxy.metric("anchorwatch_capture_rows_total") == 5.0);
    for i in 5..8 {
        send(i);
    }
    wait_until(Duration::from_secs(30), "direct delivery", || proxy.metric("anchorwatch_capture_rows_total") == 8.0);
    assert_eq!(spooled_lines(), 0);
    assert_eq!(proxy.metric("anchorwatch_proxy_spool_bytes"), 0.0);
    proxy.stop();
    let got: BTreeMap<String, Value> = central_rows(&server)
        .into_iter()
        .map(|r| (r["prediction_id"].as_str().unwrap().to_string(), normalise(&r)))
        .collect();
    assert_eq!(got, want);
    server.stop();
}

//! Hostile and careless input, as an attacker or a buggy client sends it: every case gets its
//! documented JSON error (or a normal answer), the server keeps serving, memory stays bounded, and
//! the analysis keeps running. A case is a row of a table; the tables follow the findings of a
//! security review (deep queries, event times the analysis cannot place, Arrow bodies that declare
//! more than they hold, queries that size their own output, slow bodies, cross-origin requests in
//! open mode, out-of-range result bounds, malformed buffers, body limits, value sizes, sign-in
//! attempts).

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int32Array, StringArray, TimestampSecondArray};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};
use support::{Server, client, config};

/// One request and the answer it must get.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// The error code, for a refusal.
    code: Option<&'static str>,
    /// The (row, field) the error names, where it is about one value.
    at: Option<(u64, &'static str)>,
}

impl Case {
    fn new(
        name: &'static str,
        method: &'static str,
        path: impl Into<String>,
        status: u16,
        code: Option<&'static str>,
    ) -> Self {
        Self { name, method, path: path.into(), headers: Vec::new(), body: Vec::new(), status, code, at: None }
    }

    fn json(mut self, body: &Value) -> Self {
        self.headers.push(("content-type", "application/json".into()));
        self.body = serde_json::to_vec(body).unwrap();
        self
    }

    fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers.push(("content-type", content_type.into()));
        self.body = body;
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn at(mut self, row: u64, field: &'static str) -> Self {
        self.at = Some((row, field));
        self
    }
}

/// Sends each case, checks its answer, and checks that the server still answers after it.
fn run(server: &Server, cases: Vec<Case>) {
    let client = client();
    for case in cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = client.request(method, server.url(&case.path)).body(case.body.clone());
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request.send().unwrap_or_else(|e| panic!("{}: no answer: {e}", case.name));
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = response.text().unwrap_or_default();
        assert_eq!(status, case.status, "{}: status; answer: {}", case.name, truncate(&text));
        if let Some(code) = case.code {
            assert!(content_type.starts_with("application/json"), "{}: a JSON error, got {content_type}", case.name);
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["error"]["code"], code, "{}: {answer}", case.name);
            assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}: {answer}", case.name);
            if let Some((row, field)) = case.at {
                assert_eq!(answer["error"]["details"]["row"], row, "{}: {answer}", case.name);
                assert_eq!(answer["error"]["details"]["field"], field, "{}: {answer}", case.name);
            }
        }
        let alive = client.get(server.url("/healthz")).send().map(|r| r.status().as_u16()).unwrap_or(0);
        assert_eq!(alive, 200, "{}: the server stopped answering", case.name);
    }
}

fn truncate(s: &str) -> &str {
    &s[..s.len().min(600)]
}

/// A valid prediction with a given id and event time.
fn prediction(id: &str, timestamp: Value) -> Value {
    json!({"prediction_id": id, "timestamp": timestamp,
           "features": {"age": 40, "region": "north", "vip": false}, "prediction": "good"})
}

/// An Arrow IPC stream of one `timestamp` column in seconds (and the required columns).
fn arrow_seconds(seconds: i64) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(vec![
        ("prediction_id", Arc::new(StringArray::from(vec!["hostile-arrow-time"])) as ArrayRef),
        ("timestamp", Arc::new(TimestampSecondArray::from(vec![seconds])) as ArrayRef),
        ("prediction", Arc::new(StringArray::from(vec!["good"])) as ArrayRef),
    ])
    .unwrap();
    support::ipc(&batch)
}

/// A valid schema message, then a message whose header declares 0x7FFFFFFF bytes of metadata,
/// padded to 248 bytes: a reader that trusts the length reserves 2 GiB.
fn arrow_huge_metadata() -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(vec![("age", Arc::new(Int32Array::from(vec![1])) as ArrayRef)]).unwrap();
    let mut bytes = Vec::new();
    let w = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
    drop(w);
    bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    bytes.resize(248.max(bytes.len()), 0);
    bytes
}

/// A valid stream of one Int32 column of 37 rows whose values buffer's length (148, unique in
/// the metadata) is patched to 2^60.
fn arrow_patched_buffer_length() -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(vec![(
        "age",
        Arc::new(Int32Array::from((0..37).collect::<Vec<i32>>())) as ArrayRef,
    )])
    .unwrap();
    let mut bytes = support::ipc(&batch);
    let needle = 148i64.to_le_bytes();
    let at: Vec<usize> = (0..bytes.len() - 8).filter(|&i| bytes[i..i + 8] == needle).collect();
    assert_eq!(at.len(), 1, "the buffer length appears once in the stream");
    bytes[at[0]..at[0] + 8].copy_from_slice(&(1i64 << 60).to_le_bytes());
    bytes
}

/// `SELECT 1+1+…+1` with `terms` terms.
fn deep_sum(terms: usize) -> String {
    format!("SELECT {} AS total", vec!["1"; terms].join("+"))
}

fn query(sql: &str) -> Value {
    json!({"model": "credit", "sql": sql})
}

/// The peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn hostile_requests_get_their_documented_answer_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), "[query]\ntimeout = \"3s\"\n"));
    let predictions = "/v1/models/credit/predictions";
    let origin = server.base.clone();
    let reference_csv = {
        let mut csv = String::from("age,region,vip,prediction\n");
        while csv.len() < 3 << 20 {
            csv.push_str("41,north,false,good\n38,south,true,bad\n");
        }
        csv.into_bytes()
    };

    let cases = vec![
        // 1. Deep expressions: planned on threads whose stack grows on the heap.
        Case::new("a 400-term sum", "POST", "/v1/query", 200, None).json(&query(&deep_sum(400))),
        Case::new("a 1,000-term sum", "POST", "/v1/query", 400, Some("invalid_query")).json(&query(&deep_sum(1_000))),
        Case::new("a 10,000-term sum", "POST", "/v1/query", 400, Some("invalid_query")).json(&query(&deep_sum(10_000))),
        Case::new("SQL over 64 KiB", "POST", "/v1/query", 400, Some("invalid_query")).json(&query(&deep_sum(40_000))),
        // 2. Event times outside 1970..2200, in every format.
        Case::new("JSON time in 1600", "POST", predictions, 400, Some("out_of_range"))
            .json(&json!([prediction("hostile-ok", json!("2026-11-20T00:00:00Z")), prediction("hostile-1600", json!("1600-01-01T00:00:00Z"))]))
            .at(1, "timestamp"),
        Case::new("JSON time in year 1", "POST", predictions, 400, Some("out_of_range"))
            .json(&prediction("hostile-1", json!("0001-01-01T00:00:00Z")))
            .at(0, "timestamp"),
        Case::new("JSON time in 9999", "POST", predictions, 400, Some("out_of_range"))
            .json(&prediction("hostile-9999", json!("9999-12-31T23:59:59Z")))
            .at(0, "timestamp"),
        Case::new("JSON epoch seconds -1e12", "POST", predictions, 400, Some("out_of_range"))
            .json(&prediction("hostile-neg", json!(-1e12)))
            .at(0, "timestamp"),
        Case::new("NDJSON time in 1600", "POST", predictions, 400, Some("out_of_range"))
            .body("application/x-ndjson", serde_json::to_vec(&prediction("hostile-nd", json!("1600-01-01T00:00:00Z"))).unwrap())
            .at(0, "timestamp"),
        Case::new("Arrow Timestamp(s) -1e12", "POST", predictions, 400, Some("out_of_range"))
            .body("application/vnd.apache.arrow.stream", arrow_seconds(-1_000_000_000_000))
            .at(0, "timestamp"),
        // 10. An overflowing Arrow time is refused, not replaced by the arrival time.
        Case::new("Arrow Timestamp(s) 1e16", "POST", predictions, 400, Some("out_of_range"))
            .body("application/vnd.apache.arrow.stream", arrow_seconds(10_000_000_000_000_000))
            .at(0, "timestamp"),
        // 3. An Arrow body that declares 2 GiB of metadata in 248 bytes.
        Case::new("Arrow metadata length 0x7FFFFFFF", "POST", predictions, 400, Some("malformed_arrow"))
            .body("application/vnd.apache.arrow.stream", arrow_huge_metadata()),
        // 8. An Arrow buffer length patched to 2^60.
        Case::new("Arrow buffer length 2^60", "POST", predictions, 400, Some("malformed_arrow"))
            .body("application/vnd.apache.arrow.stream", arrow_patched_buffer_length()),
        // 4. Queries that size their own output.
        Case::new("repeat 1.5 GB, constant-folded", "POST", "/v1/query", 422, Some("query_too_large"))
            .json(&query("SELECT length(repeat('x', 1500000000)) AS n")),
        Case::new("a 1 GB answer", "POST", "/v1/query", 422, Some("query_too_large"))
            .json(&query("SELECT repeat('x', 1000000) AS big FROM generate_series(1, 1000)")),
        Case::new("replace that multiplies", "POST", "/v1/query", 422, Some("query_too_large"))
            .json(&query("SELECT length(replace(repeat('x', 100000), 'x', repeat('y', 100000))) AS n")),
        Case::new("a query past its timeout", "POST", "/v1/query", 504, Some("query_timeout"))
            .json(&query("SELECT count(*) AS n FROM generate_series(1, 100000000000)")),
        // 6. Open mode: no cross-origin state changes, no foreign Host.
        Case::new("cross-origin flush", "POST", "/v1/flush", 403, Some("cross_origin"))
            .json(&json!({}))
            .header("origin", "http://evil.example"),
        Case::new("cross-origin text/plain ingest", "POST", predictions, 403, Some("cross_origin"))
            .body("text/plain", serde_json::to_vec(&prediction("hostile-csrf", json!(null))).unwrap())
            .header("origin", "http://evil.example"),
        Case::new("cross-site fetch without Origin", "POST", "/v1/flush", 403, Some("cross_origin"))
            .json(&json!({}))
            .header("sec-fetch-site", "cross-site"),
        Case::new("a foreign Host (DNS rebinding)", "GET", "/v1/models", 403, Some("host_not_allowed"))
            .header("host", "evil.example"),
        Case::new("same-origin flush", "POST", "/v1/flush", 200, None).json(&json!({})).header("origin", &origin),
        // 7. Result bounds outside what the engine represents are valid bounds.
        Case::new("drift to 2300", "GET", "/v1/models/credit/drift?to=2300-01-01T00:00:00Z", 200, None),
        Case::new("drift from year 1", "GET", "/v1/models/credit/drift?from=0001-01-01T00:00:00Z", 200, None),
        // 9. Every body limit and refusal in the documented JSON shape.
        Case::new("a 3 MiB reference CSV", "POST", "/v1/models/credit/reference", 200, None).body("text/csv", reference_csv),
        Case::new("an unknown query parameter", "GET", "/v1/models/credit/drift?bogus=1", 400, Some("invalid_request")),
        // 11. One value's size.
        Case::new("a 15 MiB category", "POST", predictions, 400, Some("value_too_large"))
            .json(&json!({"prediction_id": "hostile-big", "features": {"age": 1, "region": "r".repeat(15 << 20), "vip": false}, "prediction": "good"}))
            .at(0, "features.region"),
    ];
    run(&server, cases);

    // 3. Three huge-metadata bodies at once leave memory where it was (no 2 GiB reservations).
    let before = peak_rss(server.child.id());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let (status, _) =
                    server.post(predictions, "application/vnd.apache.arrow.stream", arrow_huge_metadata());
                assert_eq!(status, 400);
            });
        }
    });
    let after = peak_rss(server.child.id());
    assert!(after < before + (256 << 20), "peak memory grew from {before} to {after} bytes");

    // UI pages forbid framing and foreign content.
    let page = client().get(server.url("/")).send().unwrap();
    let csp = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "content-security-policy: {csp}");

    // Nothing of a refused request was stored.
    server.flush();
    let stored = server.query("SELECT count(*) AS n FROM predictions WHERE prediction_id LIKE 'hostile-%'");
    assert_eq!(stored[0]["n"], 0, "rows of refused requests were stored");
}

/// 5. Slow senders: bodies declared large and trickled hold neither the ingest budget nor their
/// connection past `server.body_read_timeout`.
#[test]
fn slow_bodies_neither_shut_out_ingest_nor_hold_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), "[server]\nbody_read_timeout = \"3s\"\n"));
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut slow: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            let head = format!(
                "POST /v1/models/credit/predictions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n[",
                16 << 20
            );
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    // The 16 hold their connections; ingest still takes everyone else.
    for i in 0..20 {
        let (status, answer) =
            server.post_json("/v1/models/credit/predictions", &prediction(&format!("fast-{i}"), json!(null)));
        assert_eq!(status, 200, "ingest while slow bodies trickle: {answer}");
    }
    // Each slow sender gets 408 body_timeout once its deadline passes.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("}}") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "a slow body's answer: {text}");
        assert!(text.contains("\"body_timeout\""), "a slow body's answer: {text}");
    }
}

/// 11. Failed authentication attempts are limited per client address.
#[test]
fn failed_sign_ins_and_tokens_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let token = "a-read-token-of-enough-length";
    let extra = format!(
        "[server]\nmax_body_bytes = \"64KiB\"\n[auth]\ntokens = [{{ name = \"reader\", token = \"{token}\", scopes = [\"read\"] }}]\n"
    );
    let server = Server::start(&config(dir.path(), &extra));
    let client = client();
    // 9. A body over max_body_bytes on a route other than ingest: 413 in the JSON shape.
    let large = client
        .post(server.url("/v1/query"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(vec![b' '; 100 << 10])
        .send()
        .unwrap();
    assert_eq!(large.status().as_u16(), 413);
    let answer: Value = large.json().unwrap();
    assert_eq!(answer["error"]["code"], "body_too_large", "{answer}");
    let with = |t: &str| client.get(server.url("/v1/models")).bearer_auth(t).send().unwrap().status().as_u16();
    assert_eq!(with(token), 200);
    for i in 0..10 {
        assert_eq!(with(&format!("wrong-token-number-{i:02}")), 401, "attempt {i}");
    }
    let refused = client.get(server.url("/v1/models")).bearer_auth("wrong-token-number-10").send().unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let answer: Value = refused.json().unwrap();
    assert_eq!(answer["error"]["code"], "too_many_attempts", "{answer}");
    // The UI's sign-in shares the count.
    let form = client
        .post(server.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=%2F"))
        .send()
        .unwrap();
    assert_eq!(form.status().as_u16(), 429);
}

/// 2. The analysis never stops for one row: rows it cannot place (written by another writer or an
/// older version) are counted and left out; a failing analysis is counted and shown until it
/// recovers.
#[test]
fn the_analysis_leaves_out_what_it_cannot_place_and_shows_when_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("age,region,vip,prediction\n");
    for i in 0..200 {
        csv +=
            &format!("{},{},{},{}\n", 20 + i % 40, ["north", "south"][i % 2], i % 5 == 0, ["good", "bad"][i % 3 / 2]);
    }
    std::fs::write(dir.path().join("reference.csv"), csv).unwrap();
    let analysis = "[models.analysis]\nreference = \"reference.csv\"\nwindow = \"1h\"\ninterval = \"1h\"\n";
    let server = Server::start(&config(dir.path(), analysis));
    let post_hour = |hour: u32| {
        let rows: Vec<Value> = (0..50)
            .map(|i| prediction(&format!("h{hour}-{i}"), json!(format!("2026-11-20T{hour:02}:{:02}:00Z", i % 60))))
            .collect();
        let (status, answer) = server.post_json("/v1/models/credit/predictions", &Value::Array(rows));
        assert_eq!(status, 200, "{answer}");
        server.flush();
    };
    let analyze = || {
        let (status, answer) = server.post_json("/v1/models/credit/analyze", &json!({}));
        (status, answer)
    };
    let windows = || {
        let r: Value = client().get(server.url("/v1/models/credit/drift")).send().unwrap().json().unwrap();
        r["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["window_start"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let metric = |name: &str| {
        server
            .metrics()
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    post_hour(0);

    // Another writer puts rows from 1600 into the store.
    let store = dir.path().join("store/credit/predictions");
    let stored = support::read_parquet(&store);
    let good = &stored[0];
    let planted = RecordBatch::try_new(
        good.schema(),
        good.schema()
            .fields()
            .iter()
            .zip(good.columns())
            .map(|(f, c)| {
                if f.name() == "timestamp" {
                    let t = arrow::array::TimestampMicrosecondArray::from(vec![-11_676_096_000_000_000; c.len()])
                        .with_timezone("UTC");
                    Arc::new(t) as ArrayRef
                } else {
                    c.clone()
                }
            })
            .collect(),
    )
    .unwrap();
    let folder = store.join("date=1600-01-01/hour=00");
    std::fs::create_dir_all(&folder).unwrap();
    let mut file = std::fs::File::create(folder.join("planted.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut file, planted.schema(), None).unwrap();
    w.write(&planted).unwrap();
    w.close().unwrap();

    let (status, answer) = analyze();
    assert_eq!(status, 200, "analysis with rows from 1600 in the store: {answer}");
    post_hour(1);
    let (status, answer) = analyze();
    assert_eq!(status, 200, "the next analysis: {answer}");
    let seen = windows();
    assert!(seen.iter().any(|w| w.starts_with("2026-11-20T00")), "{seen:?}");
    assert!(seen.iter().any(|w| w.starts_with("2026-11-20T01")), "{seen:?}");
    let skipped =
        metric("anchorwatch_analysis_skipped_rows_total{model=\"credit\",reason=\"event_time_out_of_range\"}");
    assert_eq!(skipped, good.num_rows() as f64, "skipped rows counted once");
    assert_eq!(metric("anchorwatch_analysis_failures_total{model=\"credit\"}"), 0.0);

    // A file no reader can read makes the analysis fail: counted, and shown on the model's page.
    let broken = store.join("date=2026-11-20/hour=02");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("broken.parquet"), b"this is not parquet").unwrap();
    let (status, _) = analyze();
    assert_eq!(status, 503);
    let (status, _) = analyze();
    assert_eq!(status, 503);
    assert_eq!(metric("anchorwatch_analysis_failures_total{model=\"credit\"}"), 2.0);
    let page = client().get(server.url("/models/credit")).send().unwrap().text().unwrap();
    assert!(page.contains("id=\"analysis-failing\""), "the model page shows the failing analysis");
    assert!(page.contains("2 runs in a row"), "the model page says how often");
    std::fs::remove_file(broken.join("broken.parquet")).unwrap();
    let (status, answer) = analyze();
    assert_eq!(status, 200, "{answer}");
    let page = client().get(server.url("/models/credit")).send().unwrap().text().unwrap();
    assert!(!page.contains("id=\"analysis-failing\""), "recovered: no failure shown");
}

//! Object storage end to end: two anchorwatch processes, each with its own local write-ahead log,
//! write one model's dataset into one S3 bucket (a real S3-compatible server, moto, on loopback)
//! without coordinating. Every row lands exactly once in the hive layout, SQL and the analysis
//! read the bucket, a collector killed with rows in its WAL loses none of them, and DuckDB reads
//! the objects with the query docs/store.md gives.
//!
//! Needs `moto_server` (and DuckDB) in the project's `.venv` (`make test` installs
//! tests/requirements.txt). Without it the test prints a skip, except with `CI=true`, where that
//! is a failure.

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, venv_bin};

const BUCKET: &str = "anchorwatch-test";
const PREFIX: &str = "team/prod";
const START: i64 = 1_795_132_800; // 2026-11-20T00:00:00Z
const ROWS: usize = 300;

/// moto's S3 server on a free loopback port; killed when dropped.
struct Moto {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- moto log ---\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

impl Moto {
    /// Starts `moto_server` from `.venv`; `None` (with a notice) when it is not installed, except
    /// under CI, where that fails the test.
    fn start(dir: &Path) -> Option<Self> {
        let bin = venv_bin("moto_server");
        if !bin.exists() {
            support::skip("moto_server is not in .venv (make test installs tests/requirements.txt)");
            return None;
        }
        let port = support::free_port();
        // The request log goes to a file: a pipe nobody reads would block the server once full.
        let log = dir.join("moto.log");
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start moto_server");
        let base = format!("http://127.0.0.1:{port}");
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if support::client().get(&base).send().is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("moto_server exited with {status}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            assert!(Instant::now() < end, "moto_server did not answer within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, base, log })
    }

    fn create_bucket(&self, bucket: &str) {
        let r = support::client().put(format!("{}/{bucket}", self.base)).send().unwrap();
        assert!(r.status().is_success(), "creating bucket {bucket}: {}", r.status());
    }

    /// Every key under `prefix`, through S3's ListObjectsV2 (all pages).
    fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2".to_string()), ("prefix", prefix.to_string())];
            if let Some(t) = &token {
                query.push(("continuation-token", t.clone()));
            }
            let r = support::client().get(format!("{}/{BUCKET}", self.base)).query(&query).send().unwrap();
            assert!(r.status().is_success(), "listing {prefix}: {}", r.status());
            let xml = r.text().unwrap();
            keys.extend(elements(&xml, "Key"));
            token = elements(&xml, "NextContinuationToken").pop();
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// Copies every object under `prefix` into `dest`, keys as paths. Reads are signed (moto
    /// refuses anonymous ones), so they go through object_store's S3 client.
    fn download(&self, prefix: &str, dest: &Path) {
        use object_store::ObjectStoreExt;
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.base)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for key in self.keys(prefix) {
            let data = rt.block_on(async {
                let path = object_store::path::Path::parse(&key).unwrap();
                s3.get(&path).await.unwrap().bytes().await.unwrap()
            });
            let path = dest.join(key.strip_prefix(prefix).unwrap());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, data).unwrap();
        }
    }

    /// What a anchorwatch process needs to reach this server.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.base.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

/// The text of every `<tag>` element, in order (S3's listing has no nesting that matters here).
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open).skip(1).filter_map(|s| s.split_once(&close)).map(|(v, _)| v.to_string()).collect()
}

/// One collector's config: the support model, its store in the bucket, its WAL in `wal/` beside
/// the config file, and an analysis that runs only when asked (one process analyses). `extra`
/// is appended to the model.
fn collector_config(dir: &Path, root: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("age,region,vip,prediction,target,score_good,score_bad\n");
    for i in 0..400 {
        let bad = (i % 10) as f64 / 10.0;
        let (prediction, target) = if bad >= 0.5 { ("bad", "bad") } else { ("good", "good") };
        let region = ["north", "south", "east"][i % 3];
        csv += &format!("{},{region},{},{prediction},{target},{},{bad}\n", 20 + i % 40, i % 4 == 0, 1.0 - bad);
    }
    std::fs::write(dir.join("reference.csv"), csv).unwrap();
    let analysis = "[models.analysis]\nenabled = false\nreference = \"reference.csv\"\nwindow = \"1h\"\n\
                    label_lookback = \"3650d\"\npositive_class = \"bad\"\n";
    let path = support::config(dir, &format!("{analysis}{extra}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("root = \"store\"", &format!("root = \"{root}\""))
        // Rows stay in the WAL until a flush is asked for, so a kill leaves them there.
        .replace("flush_interval = \"1s\"", "flush_interval = \"1h\"\nwal_dir = \"wal\"");
    std::fs::write(&path, text).unwrap();
    path
}

/// `n` predictions with ids `{tag}-{i}`, spread over hours 0 and 1 of START.
fn predictions(tag: &str, n: usize) -> Value {
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            let bad = (i % 10) as f64 / 10.0;
            let region = ["north", "south", "east"][i % 3];
            let prediction = if bad >= 0.5 { "bad" } else { "good" };
            json!({"prediction_id": format!("{tag}-{i}"), "timestamp": START + (i as i64 * 7200 / n as i64),
                   "features": {"age": 20 + i % 40, "region": region, "vip": i % 4 == 0},
                   "prediction": prediction, "scores": {"good": 1.0 - bad, "bad": bad}})
        })
        .collect();
    json!(rows)
}

/// Labels for every `step`-th prediction of `tag` (both hours get some).
fn labels(tag: &str, step: usize) -> Value {
    let rows: Vec<Value> =
        (0..ROWS).step_by(step).map(|i| json!({"prediction_id": format!("{tag}-{i}"), "label": "good"})).collect();
    json!(rows)
}

fn count(server: &Server, sql: &str) -> (i64, i64) {
    let rows = server.query(sql);
    (rows[0]["n"].as_i64().unwrap(), rows[0]["d"].as_i64().unwrap_or(-1))
}

/// Runs `anchorwatch` to its exit (60 s at most); returns (success, stderr).
fn run_to_exit(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let child = Command::new(support::binary())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exited(child, &format!("anchorwatch {args:?}"));
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The output of `child` once it exits; kills it and fails if it runs longer than 60 s.
fn exited(mut child: Child, what: &str) -> std::process::Output {
    let end = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{what} did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.wait_with_output().unwrap()
}

/// An object store root without a local WAL folder is refused when the config is read, naming
/// the setting; a malformed URL says what was expected. Needs no S3 server.
#[test]
fn object_store_config_errors_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::config(dir.path(), "");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("root = \"store\"", "root = \"s3://bucket/prefix\"")).unwrap();
    let (ok, stderr) = run_to_exit(&["check-config", path.to_str().unwrap()], &[]);
    assert!(!ok && stderr.contains("collector.wal_dir: must be set when store.root is object storage"), "{stderr}");

    std::fs::write(&path, text.replace("root = \"store\"", "root = \"s3:///prefix\"")).unwrap();
    let (ok, stderr) = run_to_exit(&["check-config", path.to_str().unwrap()], &[]);
    assert!(!ok && stderr.contains("store.root `s3:///prefix`: no bucket; expected s3://bucket"), "{stderr}");
}

#[test]
fn two_collectors_share_one_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else { return };
    moto.create_bucket(BUCKET);
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let root = format!("s3://{BUCKET}/{PREFIX}");

    // A bucket that does not exist stops the server at start, with the setting and the cause.
    let missing = collector_config(&dir.path().join("missing"), "s3://no-such-bucket/x", "");
    let (ok, stderr) =
        run_to_exit(&["serve", "--listen", "127.0.0.1:0", "--config", missing.to_str().unwrap()], &moto.env());
    assert!(!ok, "anchorwatch started on a missing bucket");
    assert!(
        stderr.contains("store.root `s3://no-such-bucket/x`: cannot list the bucket at http://127.0.0.1:")
            && stderr.contains("AWS_ENDPOINT_URL"),
        "{stderr}"
    );

    // So does a plain-HTTP endpoint that was not allowed.
    let mut no_http = moto.env();
    no_http.retain(|(k, _)| *k != "AWS_ALLOW_HTTP");
    no_http.push(("AWS_ALLOW_HTTP", "false".into()));
    let (ok, stderr) =
        run_to_exit(&["serve", "--listen", "127.0.0.1:0", "--config", missing.to_str().unwrap()], &no_http);
    assert!(!ok && stderr.contains("is plain HTTP; set AWS_ALLOW_HTTP=true"), "{stderr}");

    // Two collectors, one model, one bucket; each its own WAL folder.
    // The first also hands retraining runs to a pipeline (a receiver on loopback).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let retrain = format!(
        "[models.retrain]\nenabled = true\ntrainer = \"webhook\"\nwebhook_url = \"http://{}/train\"\n\
         data_window = \"3650d\"\n",
        listener.local_addr().unwrap()
    );
    let a_cfg = collector_config(&dir.path().join("a"), &root, &retrain);
    let b_cfg = collector_config(&dir.path().join("b"), &root, "");
    let a = Server::start_with_env(&a_cfg, &env);
    let b = Server::start_with_env(&b_cfg, &env);
    assert_eq!(a.post_json("/v1/models/credit/predictions", &predictions("a", ROWS)).0, 200);
    assert_eq!(b.post_json("/v1/models/credit/predictions", &predictions("b", ROWS)).0, 200);
    // Labels may come through any collector: each labels the other's predictions.
    assert_eq!(a.post_json("/v1/models/credit/labels", &labels("b", 2)).0, 200);
    assert_eq!(b.post_json("/v1/models/credit/labels", &labels("a", 3)).0, 200);
    a.flush();
    b.flush();

    // The objects are in the bucket, in the hive layout, with file names unique per writer.
    let keys = moto.keys(&format!("{PREFIX}/credit/"));
    let parquet: Vec<&String> = keys.iter().filter(|k| k.ends_with(".parquet")).collect();
    let mut writers = BTreeSet::new();
    for key in &parquet {
        let rest = key.strip_prefix(&format!("{PREFIX}/credit/")).unwrap();
        let parts: Vec<&str> = rest.split('/').collect();
        let file = match parts[..] {
            ["predictions", "date=2026-11-20", "hour=00" | "hour=01", file] => file,
            ["labels", date, file] if date.starts_with("date=") => file,
            _ => panic!("{key} is not in the hive layout"),
        };
        let writer = file.strip_prefix("part-").and_then(|f| f.split('-').next()).expect("part-<writer>-<seq>.parquet");
        writers.insert(writer.to_string());
    }
    assert_eq!(writers.len(), 2, "expected files of two writers: {keys:#?}");
    assert!(keys.contains(&format!("{PREFIX}/credit/schema.json")), "{keys:#?}");
    assert!(!keys.iter().any(|k| k.contains("/wal/")), "the WAL must stay on local disk: {keys:#?}");

    // Every row exactly once, whichever process is asked.
    for server in [&a, &b] {
        let all = "SELECT count(*) AS n, count(DISTINCT prediction_id) AS d FROM predictions";
        assert_eq!(count(server, all), (2 * ROWS as i64, 2 * ROWS as i64));
        let labeled =
            "SELECT count(*) AS n, count(DISTINCT prediction_id) AS d FROM predictions_labeled WHERE label IS NOT NULL";
        assert_eq!(count(server, labeled), (250, 250));
    }

    // One process analyses; its results go to the bucket, and the other reads them there.
    let (status, summary) = a.post_json("/v1/models/credit/analyze", &json!({}));
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["windows"].as_array().map(Vec::len), Some(2), "{summary}");
    let results = moto.keys(&format!("{PREFIX}/credit/results/drift/"));
    assert_eq!(results.len(), 2, "{results:#?}");
    let windows = "SELECT count(*) AS n, count(DISTINCT window_start) AS d FROM drift WHERE role = 'feature'";
    assert_eq!(count(&b, windows), (2 * 3, 2));
    let performance = "SELECT count(*) AS n FROM performance WHERE metric = 'accuracy' AND kind = 'realized'";
    assert_eq!(count(&b, performance).0, 2);

    // A webhook trainer gets the run's data as objects in the bucket, named by URL.
    let received = std::thread::spawn(move || support::receive_one(listener));
    assert_eq!(a.post_json("/v1/models/credit/retrain", &json!({})).0, 202);
    let body = received.join().unwrap();
    let run_id = body["run_id"].as_str().unwrap().to_string();
    let run_dir = format!("{PREFIX}/credit/retrain/runs/{run_id}");
    assert_eq!(body["train_path"], format!("s3://{BUCKET}/{run_dir}/train.parquet"), "{body}");
    assert_eq!(body["holdout_path"], format!("s3://{BUCKET}/{run_dir}/holdout.parquet"), "{body}");
    let keys = moto.keys(&format!("{run_dir}/"));
    assert_eq!(keys, [format!("{run_dir}/holdout.parquet"), format!("{run_dir}/train.parquet")]);
    support::wait_until(Duration::from_secs(60), "the run to be recorded as handed off", || {
        let runs: Value =
            support::client().get(a.url("/v1/models/credit/retrain/runs")).send().unwrap().json().unwrap();
        runs["runs"][0]["status"] == "handed_off"
    });

    // Rows acknowledged by a collector that is killed before it flushes are in its local WAL
    // only; its restart replays them into the bucket, once.
    assert_eq!(b.post_json("/v1/models/credit/predictions", &predictions("c", 100)).0, 200);
    b.kill();
    let segments: Vec<u64> = std::fs::read_dir(dir.path().join("b/wal/credit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert!(segments.iter().any(|&len| len > 0), "no WAL segment holds the rows: {segments:?}");
    let c_rows =
        "SELECT count(*) AS n, count(DISTINCT prediction_id) AS d FROM predictions WHERE prediction_id LIKE 'c-%'";
    assert_eq!(count(&a, c_rows), (0, 0));
    let b = Server::start_with_env(&b_cfg, &env);
    assert_eq!(count(&b, c_rows), (100, 100));
    let all = "SELECT count(*) AS n, count(DISTINCT prediction_id) AS d FROM predictions";
    assert_eq!(count(&a, all), (2 * ROWS as i64 + 100, 2 * ROWS as i64 + 100));
    a.stop();
    b.stop();

    // Another engine reads the objects: a copy of the bucket's keys in a folder, and the DuckDB
    // query of docs/store.md.
    let mirror = dir.path().join("mirror");
    moto.download(&format!("{PREFIX}/"), &mirror);
    duckdb_reads(&mirror, 2 * ROWS + 100, 250);
    datafusion_reads(&mirror, 2 * ROWS + 100);
}

/// The `CREATE EXTERNAL TABLE` of docs/store.md, as datafusion-cli runs it, on the copy.
fn datafusion_reads(root: &Path, rows: usize) {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let batches = rt.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let location = format!("{}/credit/predictions/", root.display());
        let create = format!(
            "CREATE EXTERNAL TABLE predictions STORED AS PARQUET PARTITIONED BY (date, hour) LOCATION '{location}'"
        );
        ctx.sql(&create).await.unwrap().collect().await.unwrap();
        let sql =
            "SELECT count(*) AS n, count(DISTINCT prediction_id) AS d, count(DISTINCT hour) AS h FROM predictions";
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    });
    let value = |i: usize| batches[0].column(i).as_primitive::<Int64Type>().value(0);
    assert_eq!((value(0), value(1), value(2)), (rows as i64, rows as i64, 2));
}

const DUCKDB: &str = r#"
import json, sys
import duckdb
root = sys.argv[1]
con = duckdb.connect()
n, d, hours = con.execute(f"""
    SELECT count(*), count(DISTINCT prediction_id), count(DISTINCT hour)
    FROM read_parquet('{root}/credit/predictions/*/*/*.parquet', hive_partitioning = true)
""").fetchone()
labels = con.execute(f"""
    SELECT count(*) FROM read_parquet('{root}/credit/labels/*/*.parquet', hive_partitioning = true)
""").fetchone()[0]
print(json.dumps({"rows": n, "distinct": d, "hours": hours, "labels": labels}))
"#;

/// DuckDB from `.venv` reads the hive layout under `root`; skipped (outside CI) without it.
fn duckdb_reads(root: &Path, rows: usize, labels: usize) {
    let python = venv_bin("python");
    let available =
        python.exists() && Command::new(&python).args(["-c", "import duckdb"]).status().is_ok_and(|s| s.success());
    if !available {
        support::skip("the DuckDB part needs duckdb in .venv (make test installs tests/requirements.txt)");
        return;
    }
    let out = Command::new(python).arg("-c").arg(DUCKDB).arg(root).output().unwrap();
    assert!(out.status.success(), "duckdb failed: {}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, json!({"rows": rows, "distinct": rows, "hours": 2, "labels": labels}));
}

/// `n` predictions with ids `{tag}-{i}`, over hours 0 and 1 of START; returns the body and the
/// number of rows in hour 0.
fn predictions_in_hours(tag: &str, n: usize) -> (Value, usize) {
    let body = predictions(tag, n);
    let hour0 = body.as_array().unwrap().iter().filter(|r| r["timestamp"].as_i64().unwrap() < START + 3600).count();
    (body, hour0)
}

/// A predictor for the proxy: every `POST /predict` gets the same plain-JSON answer.
fn predictor() -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/predict",
        axum::routing::post(|| async {
            axum::Json(json!({"prediction": "good", "scores": {"good": 0.75, "bad": 0.25}}))
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rt, url)
}

/// One prediction through the proxy, with `id` as its correlation id.
fn predict(proxy: &support::RemoteProxy, id: &str, age: usize) {
    let body = json!({"features": {"age": age, "region": "north", "vip": false}});
    let r = support::client()
        .post(format!("{}/predict", proxy.base))
        .header("x-request-id", id)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Starts `anchorwatch compact` on the config with everything eligible at once.
fn spawn_compact(config: &Path, env: &[(&str, String)]) -> Child {
    Command::new(support::binary())
        .args(["compact", "--min-files", "2", "--min-age", "0s", "--grace", "0s", "--config"])
        .arg(config)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (60 s at most) for a `anchorwatch compact` to succeed; returns what it printed.
fn finish_compact(child: Child) -> String {
    let out = exited(child, "anchorwatch compact");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "anchorwatch compact failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Two collectors and a proxy write one bucket while compaction runs: every row is read once,
/// by SQL and by the analysis, and the store ends with fewer files.
#[test]
fn compaction_while_collectors_and_a_proxy_write() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else { return };
    moto.create_bucket(BUCKET);
    let env = moto.env();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let prefix = "compaction";
    let root = format!("s3://{BUCKET}/{prefix}");
    // `a` analyses; neither compacts in the background: the test runs the passes.
    let background_off = "[store.compaction]\nenabled = false\n";
    let a_cfg = collector_config(&dir.path().join("a"), &root, background_off);
    let text =
        std::fs::read_to_string(&a_cfg).unwrap().replace("enabled = false\nreference", "enabled = true\nreference");
    std::fs::write(&a_cfg, text).unwrap();
    let b_cfg = collector_config(&dir.path().join("b"), &root, background_off);
    let a = Server::start_with_env(&a_cfg, &env_refs);
    let b = Server::start_with_env(&b_cfg, &env_refs);
    let (_rt, upstream) = predictor();
    let proxy = support::RemoteProxy::start(
        &upstream,
        "credit",
        &a.base,
        &dir.path().join("spool"),
        &["--collector-max-backoff", "200ms"],
    );

    let mut sent: BTreeSet<String> = BTreeSet::new();
    let mut hour0 = 0;
    let mut labels_sent = 0;
    let mut proxied = 0;
    // One round: three small files per collector and hour, ten rows through the proxy, labels.
    let mut round = |r: usize| {
        for k in 0..3 {
            for (server, name) in [(&a, "a"), (&b, "b")] {
                let tag = format!("{name}{r}{k}");
                let (body, in_hour0) = predictions_in_hours(&tag, 25);
                assert_eq!(server.post_json("/v1/models/credit/predictions", &body).0, 200);
                sent.extend((0..25).map(|i| format!("{tag}-{i}")));
                hour0 += in_hour0;
                server.flush();
            }
        }
        for i in 0..10 {
            let id = format!("p{r}-{i}");
            predict(&proxy, &id, 20 + i);
            sent.insert(id);
        }
        proxied += 10;
        let label_rows: Vec<Value> =
            (0..5).map(|i| json!({"prediction_id": format!("a{r}0-{i}"), "label": "good"})).collect();
        assert_eq!(b.post_json("/v1/models/credit/labels", &json!(label_rows)).0, 200);
        b.flush();
        labels_sent += 5;
        let want = proxied as i64;
        support::wait_until(Duration::from_secs(60), "the proxy's rows in the store", || {
            a.flush();
            count(&a, "SELECT count(*) AS n FROM predictions WHERE prediction_id LIKE 'p%'").0 == want
        });
    };

    round(0);
    let data_keys = |table: &str| -> usize {
        moto.keys(&format!("{prefix}/credit/{table}/"))
            .iter()
            .filter(|k| k.ends_with(".parquet") && !k.rsplit('/').next().unwrap().starts_with('_'))
            .count()
    };
    let written = data_keys("predictions");
    assert!(written >= 12, "expected many small files, got {written}");

    // A pass runs while both collectors and the proxy keep writing.
    let compacting = spawn_compact(&a_cfg, &env);
    round(1);
    let printed = finish_compact(compacting);
    assert!(printed.contains("credit/predictions: merged"), "{printed}");
    round(2);
    let all = "SELECT count(*) AS n, count(DISTINCT prediction_id) AS d FROM predictions";
    let total = sent.len() as i64;
    // The first pass's sources are still there beside its outputs: each row is still read once,
    // by a full scan and by a scan of one partition (a listing with that prefix).
    assert!(moto.keys(&format!("{prefix}/credit/predictions/")).iter().any(|k| k.contains("/part-")));
    assert_eq!(count(&a, all), (total, total), "before the last passes");
    let hour0_only = "SELECT count(*) AS n, count(DISTINCT prediction_id) AS d FROM predictions \
                      WHERE date = '2026-11-20' AND hour = '00'";
    assert_eq!(count(&a, hour0_only), (hour0 as i64, hour0 as i64));

    // Two more passes: the first merges what is left, the second deletes the merged sources.
    let before = data_keys("predictions") + data_keys("labels");
    finish_compact(spawn_compact(&a_cfg, &env));
    finish_compact(spawn_compact(&a_cfg, &env));
    let keys = moto.keys(&format!("{prefix}/credit/"));
    let after = data_keys("predictions") + data_keys("labels");
    assert!(after < before, "{before} data files before the last passes, {after} after: {keys:#?}");
    assert!(keys.iter().any(|k| k.contains("/_compaction-") && k.ends_with(".json")), "{keys:#?}");
    // One live file per partition remains, and nothing else but manifests.
    let folders: BTreeSet<&str> = keys
        .iter()
        .filter(|k| k.ends_with(".parquet") && (k.contains("/predictions/") || k.contains("/labels/")))
        .map(|k| k.rsplit_once('/').unwrap().0)
        .collect();
    assert_eq!(after, folders.len(), "{keys:#?}");

    // Every prediction exactly once, whichever process is asked, and exactly the ones sent.
    for server in [&a, &b] {
        assert_eq!(count(server, all), (total, total));
        let ids: BTreeSet<String> = server
            .query("SELECT prediction_id FROM predictions")
            .iter()
            .map(|r| r["prediction_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, sent);
        let labels = "SELECT count(*) AS n, count(DISTINCT prediction_id) AS d FROM labels";
        assert_eq!(count(server, labels), (labels_sent, labels_sent));
    }

    // The analysis counts each row once per window.
    let (status, summary) = a.post_json("/v1/models/credit/analyze", &json!({}));
    assert_eq!(status, 200, "{summary}");
    let drift: Value = support::client().get(a.url("/v1/models/credit/drift")).send().unwrap().json().unwrap();
    let windows = drift["windows"].as_array().unwrap();
    let rows_at = |start: &str| -> i64 {
        windows
            .iter()
            .filter(|w| w["window_start"].as_str().unwrap().starts_with(start))
            .map(|w| w["rows"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(rows_at("2026-11-20T00:00:00"), hour0 as i64, "{drift}");
    let predicted_in_start_hours = (sent.len() - proxied) as i64;
    assert_eq!(rows_at("2026-11-20T01:00:00"), predicted_in_start_hours - hour0 as i64, "{drift}");
    let all_rows: i64 = windows.iter().map(|w| w["rows"].as_i64().unwrap()).sum();
    assert_eq!(all_rows, total, "{drift}");

    drop(proxy);
    a.stop();
    b.stop();
}

//! When the store stops taking writes, unflushed data piles up only to `max_pending_bytes`; then
//! ingest answers 429 with Retry-After instead of growing. When the store comes back, the backlog
//! is written and ingest resumes, with nothing lost.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, client, config};

#[test]
fn a_stuck_store_gives_429_then_recovers_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "flush_interval = \"1s\"",
        "flush_interval = \"100ms\"\nmax_segment_bytes = \"4KiB\"\nmax_pending_bytes = \"16KiB\"",
    );
    std::fs::write(&cfg, text).unwrap();
    // A file where the predictions folder should be: every Parquet write fails until it goes.
    let blocker = dir.path().join("store/credit/predictions");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, "not a folder").unwrap();

    let server = Server::start(&cfg);
    let url = server.url("/v1/models/credit/predictions");
    let mut accepted = 0u64;
    let mut seq = 0;
    let mut post = || {
        seq += 1;
        let body: Vec<Value> = (0..20).map(|i| json!({"prediction_id": format!("o-{seq}-{i}"), "features": {"age": i, "region": "north", "vip": true}, "prediction": "good"})).collect();
        client().post(&url).json(&body).send().unwrap()
    };
    let mut refused = None;
    support::wait_until(Duration::from_secs(60), "a 429 once the backlog reaches max_pending_bytes", || {
        let r = post();
        if r.status() == 200 {
            accepted += 20;
            false
        } else {
            refused = Some(r);
            true
        }
    });
    let refused = refused.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.json::<Value>().unwrap()["error"]["code"], "overloaded");
    assert!(accepted > 0);
    let metrics = server.metrics();
    assert!(metrics.contains("anchorwatch_flush_errors_total{model=\"credit\"}"), "{metrics}");
    let fill: f64 = metrics
        .lines()
        .find(|l| l.starts_with("anchorwatch_buffer_fill_ratio{model=\"credit\"}"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fill >= 1.0, "buffer fill {fill}");

    // The store comes back: the backlog drains and ingest resumes.
    std::fs::remove_file(&blocker).unwrap();
    support::wait_until(Duration::from_secs(90), "ingest to resume after the store recovered", || {
        let r = post();
        if r.status() == 200 {
            accepted += 20;
        }
        r.status() == 200
    });
    server.flush();
    let rows = server.query("SELECT count(*) AS n, count(DISTINCT prediction_id) AS d FROM predictions");
    assert_eq!(rows, vec![json!({"n": accepted, "d": accepted})]);
    server.stop();
}

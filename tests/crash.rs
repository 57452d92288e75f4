//! Crash safety: while clients ingest, the server is killed with SIGKILL at random moments, several
//! times. After a restart every acknowledged row is stored exactly once.

use crate::support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::AsArray;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::{Server, config, read_parquet};

const ROUNDS: usize = 5;
const CLIENTS: usize = 3;
const ROWS_PER_REQUEST: usize = 20;

#[test]
fn sigkill_loses_nothing_acknowledged_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments and a short flush interval, so kills also land in the middle of flushes.
    let cfg = config(dir.path(), "").to_string_lossy().to_string();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "flush_interval = \"1s\"",
        "flush_interval = \"150ms\"\nmax_segment_bytes = \"16KiB\"\nsync = \"always\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let cfg = std::path::PathBuf::from(cfg);

    let mut rng = StdRng::seed_from_u64(20261125);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    for round in 0..ROUNDS {
        let server = Server::start(&cfg);
        let stop = Arc::new(AtomicBool::new(false));
        let acked_before = acked.lock().unwrap().len();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (url, stop, acked) = (server.url("/v1/models/credit/predictions"), stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                    for seq in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let ids: Vec<String> = (0..ROWS_PER_REQUEST).map(|i| format!("r{round}-c{t}-{seq}-{i}")).collect();
                        let body: Vec<Value> = ids
                            .iter()
                            .map(|id| json!({"prediction_id": id, "features": {"age": seq, "region": "x", "vip": true}, "prediction": "good"}))
                            .collect();
                        match client.post(&url).json(&body).send() {
                            Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                            // No retry: a request without an answer may or may not have landed.
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        // The kill moment is the random part of the test; everything else waits on conditions.
        support::wait_until(Duration::from_secs(60), "the clients' first acknowledgements", || {
            acked.lock().unwrap().len() > acked_before
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(50..800)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
    }

    // Restart, let the WAL replay, and make everything visible.
    let server = Server::start(&cfg);
    server.flush();
    server.stop();

    let mut stored = Vec::new();
    for batch in read_parquet(&dir.path().join("store/credit/predictions")) {
        stored.extend(
            batch.column_by_name("prediction_id").unwrap().as_string::<i32>().iter().map(|v| v.unwrap().to_string()),
        );
    }
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "{} rows stored more than once", stored.len() - unique.len());
    let acked = acked.lock().unwrap();
    assert!(acked.len() >= ROUNDS * ROWS_PER_REQUEST, "the clients got too few acknowledgements to test anything");
    let lost: Vec<&String> = acked.iter().filter(|id| !unique.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged rows lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    eprintln!(
        "{} rows acknowledged over {ROUNDS} kills; {} stored (the rest were in flight when killed)",
        acked.len(),
        stored.len()
    );
}

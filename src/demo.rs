//! `driftwatch demo`: the server on the embedded example config, fed a generated stream of
//! credit-scoring predictions and late labels, then a look at what landed in the store.
//!
//! The generator (fixed seed, so every run sends the same data): applicants with age, income,
//! loan amount, term, employment and region; the model calls an applicant `bad` when a logistic
//! score of debt-to-income, term and past default says so, and the true label follows the same
//! score with noise, so the model is right about 80% of the time.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::config::{self, EXAMPLE};
use crate::server::Server;

const MODEL: &str = "credit";
const BATCH: usize = 100;

/// One generated applicant and the model's answer.
fn applicant(rng: &mut StdRng) -> (Value, bool) {
    let age = rng.random_range(21.0..70.0_f64).round();
    let income = (rng.random_range(9.5..12.0_f64)).exp().round();
    let loan = (income * rng.random_range(0.1..1.5)).round();
    let term = [12.0, 24.0, 36.0, 60.0][rng.random_range(0..4)];
    let employment = ["salaried", "self-employed", "unemployed", "retired"][rng.random_range(0..4)];
    let region = ["north", "south", "east", "west"][rng.random_range(0..4)];
    let has_default = rng.random_bool(0.1);
    let z = 2.5 * (loan / income) + term / 60.0 + if has_default { 1.5 } else { 0.0 } - 2.5;
    let p_bad = 1.0 / (1.0 + (-z).exp());
    let truly_bad = rng.random_bool((p_bad * 0.8 + 0.1).clamp(0.0, 1.0));
    let record = json!({
        "features": {
            "age": age, "income": income, "loan_amount": loan, "term_months": term,
            "employment": employment, "region": region, "has_default": has_default,
        },
        "prediction": if p_bad >= 0.5 { "bad" } else { "good" },
        "scores": { "good": 1.0 - p_bad, "bad": p_bad },
        "model_version": "v1",
    });
    (record, truly_bad)
}

/// Runs the demo; see the module docs.
pub async fn run(store: &Path, listen: SocketAddr, rows: usize, serve: bool) -> anyhow::Result<()> {
    println!("driftwatch demo: a credit-scoring model's predictions stream in, labels follow later.\n");
    if store.exists() {
        std::fs::remove_dir_all(store).with_context(|| format!("cannot clear {}", store.display()))?;
    }
    std::fs::create_dir_all(store)?;
    let store = store.canonicalize()?;
    // The example config, with the store in the demo's folder; saved so `driftwatch query` can use it.
    let text = EXAMPLE.replace("root = \"data\"", &format!("root = {:?}", store.display().to_string()));
    let config_path = store.join("driftwatch.toml");
    std::fs::write(&config_path, &text)?;
    let loaded = config::load(&config_path)?;
    let server = Server::start(&loaded, listen).await?;
    let base = format!("http://{}", server.addr);
    println!("[1/4] server up at {base}");
    println!("      metrics: {base}/metrics   API description: {base}/openapi.json\n");

    let client = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut labels = Vec::new();
    let mut sent = 0;
    println!("[2/4] sending {rows} predictions in requests of {BATCH}");
    while sent < rows {
        let n = BATCH.min(rows - sent);
        let (records, truth): (Vec<Value>, Vec<bool>) = (0..n).map(|_| applicant(&mut rng)).unzip();
        let answer: Value =
            post(&client, &format!("{base}/v1/models/{MODEL}/predictions"), &Value::Array(records)).await?;
        let ids = answer["prediction_ids"].as_array().context("the server returned no prediction ids")?;
        // About 60% of outcomes become known; the rest never do.
        for (id, bad) in ids.iter().zip(truth) {
            if rng.random_bool(0.6) {
                labels.push(json!({ "prediction_id": id, "label": if bad { "bad" } else { "good" } }));
            }
        }
        sent += n;
        if sent % 1000 == 0 || sent == rows {
            println!(
                "      {sent:>6}/{rows} predictions acknowledged ({:.0} rows/s)",
                sent as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!("\n[3/4] the outcomes arrive later: posting {} labels", labels.len());
    for chunk in labels.chunks(500) {
        post(&client, &format!("{base}/v1/models/{MODEL}/labels"), &Value::Array(chunk.to_vec())).await?;
    }
    post(&client, &format!("{base}/v1/flush"), &json!({})).await?;

    println!("\n[4/4] what landed in the store ({}):", store.display());
    let mut files = Vec::new();
    list_parquet(&store.join(MODEL), &mut files)?;
    files.sort();
    for f in files.iter().take(6) {
        println!("      {}", f.strip_prefix(&store).unwrap_or(f).display());
    }
    if files.len() > 6 {
        println!("      … and {} more", files.len() - 6);
    }
    let sql = "SELECT count(*) AS predictions, count(label) AS labeled, \
               round(avg(CASE WHEN label IS NULL THEN NULL WHEN label = prediction THEN 1.0 ELSE 0.0 END), 3) AS accuracy \
               FROM predictions_labeled";
    let answer: Value = post(&client, &format!("{base}/v1/query"), &json!({"model": MODEL, "sql": sql})).await?;
    let row = &answer["rows"][0];
    println!(
        "\n      predictions stored: {}   labeled: {}   accuracy on labeled rows: {}",
        row["predictions"], row["labeled"], row["accuracy"]
    );
    println!("\n      Query it yourself:");
    println!(
        "        cargo run -- query --config {} \"SELECT region, count(*) FROM predictions GROUP BY region\"",
        config_path.display()
    );
    println!("        curl -s {base}/metrics | grep driftwatch_ingest_rows_total");
    if serve {
        println!("\n      The server keeps running at {base}; Ctrl-C stops it.");
        let _ = tokio::signal::ctrl_c().await;
    }
    server.shutdown().await?;
    println!("\ndone.");
    Ok(())
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let response = client.post(url).json(body).send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.with_context(|| format!("POST {url}: unreadable answer"))?;
    anyhow::ensure!(status.is_success(), "POST {url} answered {status}: {answer}");
    Ok(answer)
}

fn list_parquet(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            list_parquet(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

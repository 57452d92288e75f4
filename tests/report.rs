//! `anchorwatch report` end to end: the real binary on Parquet and CSV files generated here
//! with fixed seeds, checked against the analyzer called directly on the same values.

use anchorwatch_analyzer::drift::{self, ColumnData, ColumnOptions};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// Values of one generated dataset, kept to recompute scores directly.
struct Data {
    stable: Vec<f64>,
    shifted: Vec<f64>,
    cat_stable: Vec<&'static str>,
    cat_shifted: Vec<&'static str>,
    small_int: Vec<i64>,
    empty: Vec<Option<f64>>,
}

/// A standard normal draw (Box-Muller), so the test needs no distribution crate.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn pick(rng: &mut StdRng, weights: &[(&'static str, f64)]) -> &'static str {
    let mut x: f64 = rng.random();
    for (v, w) in weights {
        if x < *w {
            return v;
        }
        x -= w;
    }
    weights[weights.len() - 1].0
}

/// `shift` moves `shifted` by one standard deviation and skews `cat_shifted`; `stable`,
/// `cat_stable` and `small_int` keep their distribution. `empty` is all missing in current.
fn generate(seed: u64, n: usize, current: bool) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let shift = if current { 1.0 } else { 0.0 };
    let even = [("a", 0.34), ("b", 0.33), ("c", 0.33)];
    let skewed = if current { [("a", 0.7), ("b", 0.2), ("c", 0.1)] } else { even };
    let mut d = Data {
        stable: vec![],
        shifted: vec![],
        cat_stable: vec![],
        cat_shifted: vec![],
        small_int: vec![],
        empty: vec![],
    };
    for i in 0..n {
        d.stable.push(normal(&mut rng) * 2.0 + 10.0);
        d.shifted.push(normal(&mut rng) + shift);
        d.cat_stable.push(pick(&mut rng, &even));
        d.cat_shifted.push(pick(&mut rng, &skewed));
        d.small_int.push(rng.random_range(0..3));
        d.empty.push(if current { None } else { Some(i as f64) });
    }
    d
}

fn batch(d: &Data) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("stable", DataType::Float64, false),
        Field::new("shifted", DataType::Float64, false),
        Field::new("cat_stable", DataType::Utf8, false),
        Field::new("cat_shifted", DataType::Utf8, false),
        Field::new("small_int", DataType::Int64, false),
        Field::new("empty", DataType::Float64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(d.stable.clone())),
        Arc::new(Float64Array::from(d.shifted.clone())),
        Arc::new(StringArray::from(d.cat_stable.clone())),
        Arc::new(StringArray::from(d.cat_shifted.clone())),
        Arc::new(Int64Array::from(d.small_int.clone())),
        Arc::new(Float64Array::from(d.empty.clone())),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    // Small row groups: the reader sees several batches and partitions, as with real files.
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(700)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// CSV with Rust's shortest round-trip float formatting, so the binary parses the exact values.
fn write_csv(path: &Path, d: &Data) {
    let mut s = String::from("stable,shifted,cat_stable,cat_shifted,small_int,empty\n");
    for i in 0..d.stable.len() {
        let empty = d.empty[i].map(|v| format!("{v:?}")).unwrap_or_default();
        s += &format!(
            "{:?},{:?},{},{},{},{}\n",
            d.stable[i], d.shifted[i], d.cat_stable[i], d.cat_shifted[i], d.small_int[i], empty
        );
    }
    std::fs::write(path, s).unwrap();
}

fn anchorwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anchorwatch")).arg("report").args(args).output().unwrap()
}

fn run_json(args: &[&str]) -> Value {
    let out = anchorwatch(args);
    assert!(out.status.success(), "anchorwatch report failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn column<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn fixture(dir: &Path, n_ref: usize, n_cur: usize, ext: &str) -> (PathBuf, PathBuf, Data, Data) {
    let (r, c) = (generate(7, n_ref, false), generate(8, n_cur, true));
    let (rp, cp) = (dir.join(format!("reference.{ext}")), dir.join(format!("current.{ext}")));
    if ext == "csv" {
        write_csv(&rp, &r);
        write_csv(&cp, &c);
    } else {
        write_parquet(&rp, &batch(&r));
        write_parquet(&cp, &batch(&c));
    }
    (rp, cp, r, c)
}

fn num(v: &[f64]) -> ColumnData<'_> {
    ColumnData::Numerical { values: v, integer: false }
}

fn direct_score(r: &ColumnData<'_>, c: &ColumnData<'_>) -> drift::ColumnDriftResult {
    drift::column_drift(r, c, &ColumnOptions::default()).unwrap()
}

fn cats<'a>(v: &'a [&'a str]) -> Vec<Option<&'a str>> {
    v.iter().map(|s| Some(*s)).collect()
}

#[test]
fn parquet_report_matches_the_analyzer() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, cp, r, c) = fixture(dir.path(), 3000, 2000, "parquet");
    let report = run_json(&["--reference", rp.to_str().unwrap(), "--current", cp.to_str().unwrap()]);

    assert_eq!(report["rows"]["reference"], 3000);
    assert_eq!(report["rows"]["current"], 2000);
    // Above 1000 reference rows Evidently picks wasserstein for numbers, jensenshannon otherwise.
    let expect = [
        ("stable", "num", "wasserstein", false),
        ("shifted", "num", "wasserstein", true),
        ("cat_stable", "cat", "jensenshannon", false),
        ("cat_shifted", "cat", "jensenshannon", true),
        ("small_int", "cat", "jensenshannon", false),
    ];
    for (name, kind, test, drifted) in expect {
        let col = column(&report, name);
        assert_eq!(col["kind"], kind, "{name}");
        assert_eq!(col["stattest"], test, "{name}");
        assert_eq!(col["drifted"], drifted, "{name}: {col}");
        assert_eq!(col["threshold"], 0.1, "{name}");
        assert!(col.get("error").is_none());
    }
    // Exactly the analyzer's numbers on the same values.
    let s = direct_score(&num(&r.shifted), &num(&c.shifted));
    assert_eq!(column(&report, "shifted")["score"].as_f64().unwrap(), s.score);
    let (rc, cc) = (cats(&r.cat_shifted), cats(&c.cat_shifted));
    let s = direct_score(&ColumnData::Categorical(&rc), &ColumnData::Categorical(&cc));
    assert_eq!(column(&report, "cat_shifted")["score"].as_f64().unwrap(), s.score);

    // An all-missing column is reported with an error and does not count toward the share.
    let empty = column(&report, "empty");
    assert!(empty["error"].as_str().unwrap().contains("empty"), "{empty}");
    assert!(empty.get("score").is_none() && empty.get("drifted").is_none());
    assert_eq!(empty["current"]["missing"], 2000);
    let d = &report["dataset_drift"];
    assert_eq!(d["columns"], 5);
    assert_eq!(d["drifted_columns"], 2);
    assert_eq!(d["share"], 0.4);
    assert_eq!(d["threshold"], 0.5);
    assert_eq!(d["drifted"], false);

    // Summaries: shared histogram edges, counts adding up, categories with new ones listed.
    let shifted = column(&report, "shifted");
    assert_eq!(shifted["reference"]["histogram"]["edges"], shifted["current"]["histogram"]["edges"]);
    let total: u64 =
        shifted["current"]["histogram"]["counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 2000);
    let mean = shifted["current"]["mean"].as_f64().unwrap();
    assert!((mean - 1.0).abs() < 0.1, "{mean}");
    assert!(shifted["reference"]["p5"].as_f64() < shifted["reference"]["p95"].as_f64());
    let cat = column(&report, "cat_shifted");
    assert_eq!(cat["current"]["count"], 2000);
    assert_eq!(cat["current"]["new_unique"], 0);
    assert_eq!(cat["reference"]["top"].as_array().unwrap().len(), 3);
}

#[test]
fn csv_small_samples_use_p_value_tests() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, cp, r, c) = fixture(dir.path(), 600, 400, "csv");
    let report = run_json(&["--reference", rp.to_str().unwrap(), "--current", cp.to_str().unwrap()]);
    assert_eq!(report["rows"]["reference"], 600);
    // At most 1000 reference rows: ks for numbers, chisquare for 3 categories.
    let expect = [
        ("stable", "ks", false),
        ("shifted", "ks", true),
        ("cat_stable", "chisquare", false),
        ("cat_shifted", "chisquare", true),
        ("small_int", "chisquare", false),
    ];
    for (name, test, drifted) in expect {
        let col = column(&report, name);
        assert_eq!(col["stattest"], test, "{name}");
        assert_eq!(col["drifted"], drifted, "{name}: {col}");
    }
    let s = direct_score(&num(&r.stable), &num(&c.stable));
    assert_eq!(column(&report, "stable")["score"].as_f64().unwrap(), s.score);
    let (ri, ci): (Vec<f64>, Vec<f64>) =
        (r.small_int.iter().map(|&v| v as f64).collect(), c.small_int.iter().map(|&v| v as f64).collect());
    let s = direct_score(
        &ColumnData::Numerical { values: &ri, integer: true },
        &ColumnData::Numerical { values: &ci, integer: true },
    );
    assert_eq!(column(&report, "small_int")["score"].as_f64().unwrap(), s.score);
    // The empty CSV column is all missing in current: an error entry, as with Parquet.
    assert!(column(&report, "empty")["error"].is_string());
    assert_eq!(report["dataset_drift"]["drifted_columns"], 2);
}

#[test]
fn config_selects_columns_tests_thresholds_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, cp, ..) = fixture(dir.path(), 3000, 2000, "parquet");
    let config = dir.path().join("report.toml");
    std::fs::write(
        &config,
        r#"
exclude = ["empty", "cat_stable"]
target = "cat_shifted"
prediction = "small_int"
drift_share = 0.25
num_stattest = "psi"

[columns.stable]
stattest = "ks"
threshold = 0.01

[columns.small_int]
kind = "num"
"#,
    )
    .unwrap();
    let report = run_json(&[
        "--reference",
        rp.to_str().unwrap(),
        "--current",
        cp.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let names: Vec<&str> = report["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["stable", "shifted", "cat_shifted", "small_int"]);
    let stable = column(&report, "stable");
    assert_eq!((stable["stattest"].as_str(), stable["threshold"].as_f64()), (Some("ks"), Some(0.01)));
    assert_eq!(column(&report, "shifted")["stattest"], "psi");
    assert_eq!(column(&report, "cat_shifted")["role"], "target");
    assert_eq!(column(&report, "cat_shifted")["stattest"], "jensenshannon");
    let pred = column(&report, "small_int");
    assert_eq!(
        (pred["role"].as_str(), pred["kind"].as_str(), pred["stattest"].as_str()),
        (Some("prediction"), Some("num"), Some("psi"))
    );
    let d = &report["dataset_drift"];
    assert_eq!((d["columns"].as_u64(), d["drifted_columns"].as_u64()), (Some(4), Some(2)));
    assert_eq!((d["threshold"].as_f64(), d["drifted"].as_bool()), (Some(0.25), Some(true)));

    // Unknown fields are refused, naming the field.
    std::fs::write(&config, "exclude = []\ndrift_shares = 0.3\n").unwrap();
    let out = anchorwatch(&[
        "--reference",
        rp.to_str().unwrap(),
        "--current",
        cp.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drift_shares"));
}

#[test]
fn html_output_is_chosen_by_extension_and_written_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, cp, ..) = fixture(dir.path(), 3000, 2000, "parquet");
    let html = dir.path().join("drift.html");
    let out = anchorwatch(&[
        "--reference",
        rp.to_str().unwrap(),
        "--current",
        cp.to_str().unwrap(),
        "--output",
        html.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    // Progress on stderr, ending with the verdict.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("computing drift for 6 columns"), "{stderr}");
    assert!(stderr.contains("2 of 5 columns drifted"), "{stderr}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches(r#"<tr class="drifted""#).count(), 2);
    assert!(page.contains("Drift detected"));
    assert!(!page.contains("<link") && !page.contains("src="), "the page must not load anything");
    // Summaries only: the page does not grow with the rows.
    assert!(page.len() < 200_000, "{} bytes", page.len());
}

fn assert_fails(args: &[&str], needles: &[&str]) {
    let out = anchorwatch(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: expected {n:?} in {stderr}");
    }
}

#[test]
fn clear_errors_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, cp, ..) = fixture(dir.path(), 100, 100, "parquet");
    let (rp, cp) = (rp.to_str().unwrap(), cp.to_str().unwrap());
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    let missing = path("missing.parquet");
    assert_fails(&["--reference", &missing, "--current", cp], &["reference", "missing.parquet"]);

    let txt = path("data.txt");
    std::fs::write(&txt, "a\n1\n").unwrap();
    assert_fails(&["--reference", rp, "--current", &txt], &["current", "data.txt", "extension"]);

    let garbage = path("garbage.parquet");
    std::fs::write(&garbage, "this is not parquet").unwrap();
    assert_fails(&["--reference", &garbage, "--current", cp], &["garbage.parquet"]);

    // Header only: zero rows.
    let header = path("header.csv");
    std::fs::write(&header, "stable,shifted\n").unwrap();
    assert_fails(&["--reference", rp, "--current", &header], &["header.csv", "no rows"]);

    let zero_bytes = path("zero.csv");
    std::fs::write(&zero_bytes, "").unwrap();
    assert_fails(&["--reference", &zero_bytes, "--current", rp], &["zero.csv", "empty"]);

    // The same column as numbers in one file and text in the other.
    let a = path("a.csv");
    let b = path("b.csv");
    std::fs::write(&a, "x,y\n1.5,u\n2.5,v\n").unwrap();
    std::fs::write(&b, "x,y\nhigh,u\nlow,v\n").unwrap();
    assert_fails(&["--reference", &a, "--current", &b], &["\"x\"", "incompatible types", "a.csv", "b.csv"]);

    // No shared column at all.
    let other = path("other.csv");
    std::fs::write(&other, "z\n1\n").unwrap();
    assert_fails(&["--reference", &a, "--current", &other], &["no column to compare"]);

    // A column named in the config must exist in both files.
    let config = path("c.toml");
    std::fs::write(&config, "include = [\"stable\", \"nope\"]\n").unwrap();
    assert_fails(&["--reference", rp, "--current", cp, "--config", &config], &["\"nope\"", "reference"]);

    let out = anchorwatch(&["--reference", rp, "--current", cp, "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2), "clap rejects unknown formats");
}

#[test]
fn columns_in_one_file_only_are_listed_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    let mut ra = String::from("x,only_ref\n");
    let mut rb = String::from("only_cur,x\n");
    for i in 0..50 {
        ra += &format!("{i},{i}\n");
        rb += &format!("{i},{}\n", i + 1);
    }
    std::fs::write(&a, ra).unwrap();
    std::fs::write(&b, rb).unwrap();
    let report = run_json(&["-q", "--reference", a.to_str().unwrap(), "--current", b.to_str().unwrap()]);
    assert_eq!(report["columns"].as_array().unwrap().len(), 1);
    let skipped = &report["skipped"];
    assert_eq!(skipped[0]["name"], "only_ref");
    assert_eq!(skipped[0]["reason"], "only in the reference file");
    assert_eq!(skipped[1]["name"], "only_cur");
    assert_eq!(skipped[1]["reason"], "only in the current file");
}

#[test]
fn output_through_a_symlink_writes_the_target_and_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, cp, ..) = fixture(dir.path(), 100, 100, "csv");
    let target = dir.path().join("target.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = anchorwatch(&[
        "-q",
        "--reference",
        rp.to_str().unwrap(),
        "--current",
        cp.to_str().unwrap(),
        "-o",
        link.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(written["rows"]["reference"], 100);
}

/// Sentences from `vocabulary`, `n` of them, 3 to 8 words each.
fn sentences(rng: &mut StdRng, n: usize, vocabulary: &[&str]) -> Vec<String> {
    (0..n)
        .map(|_| {
            let words = rng.random_range(3..=8);
            (0..words).map(|_| vocabulary[rng.random_range(0..vocabulary.len())]).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

#[test]
fn declared_text_columns_get_the_domain_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let shop = ["battery", "screen", "charger", "delivery", "price", "refund", "good", "bad", "slow", "fast"];
    let travel = ["flight", "hotel", "luggage", "beach", "museum", "train", "good", "bad", "slow", "fast"];
    let write = |name: &str, review: &[String], note: &[String]| {
        let mut s = String::from("review,note\n");
        for (r, n) in review.iter().zip(note) {
            s += &format!("\"{r}\",\"{n}\"\n");
        }
        let path = dir.path().join(name);
        std::fs::write(&path, s).unwrap();
        path
    };
    let rp = write("ref.csv", &sentences(&mut rng, 400, &shop), &sentences(&mut rng, 400, &shop));
    let cp = write("cur.csv", &sentences(&mut rng, 300, &travel), &sentences(&mut rng, 300, &shop));
    let config = dir.path().join("report.toml");
    std::fs::write(&config, "[columns.review]\nkind = \"text\"\n[columns.note]\nkind = \"text\"\n").unwrap();
    let args = ["--reference", rp.to_str().unwrap(), "--current", cp.to_str().unwrap(), "--config"];
    let report = run_json(&[&args[..], &[config.to_str().unwrap()]].concat());
    let review = column(&report, "review");
    assert_eq!(review["kind"], "text");
    // 400 reference rows: Evidently's default for text is the bootstrapped percentile test.
    assert_eq!(review["stattest"], "perc_text_content_drift");
    assert_eq!(review["threshold"], 0.95);
    assert_eq!(review["drifted"], true);
    assert!(review["score"].as_f64().unwrap() > 0.9, "{review}");
    let words = review["current"]["typical_words"].as_array().unwrap();
    assert!(words.iter().any(|w| w == "hotel" || w == "flight" || w == "beach"), "{words:?}");
    assert_eq!(review["reference"]["count"], 400);
    assert!(review["reference"]["length"]["mean"].as_f64().unwrap() > 10.0);
    let note = column(&report, "note");
    assert_eq!(note["drifted"], false, "{note}");
    // Without the config, the same columns are categorical, as Evidently infers.
    let plain = run_json(&args[..4]);
    assert_eq!(column(&plain, "review")["kind"], "cat");
}

/// Two numbers that grow together in the reference and apart in the current file, each with
/// the same distribution in both, and a category drawn the same way.
fn joint_csv(path: &Path, rng: &mut StdRng, n: usize, apart: bool) -> (Vec<f64>, Vec<f64>, Vec<&'static str>) {
    let even = [("a", 0.34), ("b", 0.33), ("c", 0.33)];
    let (mut x, mut y, mut k) = (Vec::new(), Vec::new(), Vec::new());
    let mut csv = String::from("x,y,k\n");
    for _ in 0..n {
        let xi = normal(rng);
        let yi = if apart { -xi } else { xi } + 0.3 * normal(rng);
        let ki = pick(rng, &even);
        csv += &format!("{xi},{yi},{ki}\n");
        x.push(xi);
        y.push(yi);
        k.push(ki);
    }
    std::fs::write(path, csv).unwrap();
    // The values as the report reads them back from the CSV text.
    let reread = |v: Vec<f64>| v.iter().map(|x| x.to_string().parse().unwrap()).collect();
    (reread(x), reread(y), k)
}

#[test]
fn features_taken_jointly_drift_when_only_their_relation_changes() {
    use anchorwatch_analyzer::multivariate::reconstruction::{Reconstruction, ReconstructionOptions};
    use anchorwatch_analyzer::multivariate::{Column, Table};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let (rp, same, apart) = (dir.path().join("r.csv"), dir.path().join("same.csv"), dir.path().join("apart.csv"));
    let r = joint_csv(&rp, &mut rng, 2000, false);
    joint_csv(&same, &mut rng, 2000, false);
    let c = joint_csv(&apart, &mut rng, 2000, true);

    let report = run_json(&["--reference", rp.to_str().unwrap(), "--current", apart.to_str().unwrap()]);
    for name in ["x", "y", "k"] {
        assert_eq!(column(&report, name)["drifted"], false, "{name} alone keeps its distribution");
    }
    let m = &report["multivariate"][0];
    assert_eq!(m["method"], "data_reconstruction", "{report}");
    assert_eq!(m["features"], serde_json::json!(["x", "y", "k"]));
    assert_eq!(m["drifted"], true, "{m}");
    assert_eq!(m["reference_chunks"].as_array().unwrap().len(), 10);

    // The same numbers as the analyzer's reconstruction on the same values.
    let cats = |k: &[&'static str]| -> Vec<Option<&'static str>> { k.iter().map(|s| Some(*s)).collect() };
    let (rk, ck) = (cats(&r.2), cats(&c.2));
    let table =
        |x, y, k| Table::new([Column::numerical("x", x), Column::numerical("y", y), Column::categorical("k", k)]);
    let fitted = Reconstruction::fit(&table(&r.0, &r.1, &rk).unwrap(), &ReconstructionOptions::default()).unwrap();
    let chunk = fitted.window(&table(&c.0, &c.1, &ck).unwrap()).unwrap();
    assert_eq!(m["value"].as_f64(), Some(chunk.value));
    assert_eq!(m["upper"].as_f64(), fitted.bounds().upper);

    let report = run_json(&["--reference", rp.to_str().unwrap(), "--current", same.to_str().unwrap()]);
    assert_eq!(report["multivariate"][0]["drifted"], false, "{}", report["multivariate"]);
    assert_eq!(report["multivariate"].as_array().unwrap().len(), 1, "the domain classifier only when asked");

    // The domain classifier, when the config asks: trees tell the related from the unrelated.
    let both = dir.path().join("both.toml");
    std::fs::write(&both, "domain_classifier = true\n").unwrap();
    for (current, drifted) in [(&apart, true), (&same, false)] {
        let report = run_json(&[
            "--reference",
            rp.to_str().unwrap(),
            "--current",
            current.to_str().unwrap(),
            "--config",
            both.to_str().unwrap(),
        ]);
        let d = &report["multivariate"][1];
        assert_eq!((&d["method"], &d["drifted"]), (&Value::from("domain_classifier"), &Value::from(drifted)), "{d}");
        assert_eq!((d["lower"].as_f64(), d["upper"].as_f64()), (Some(0.45), Some(0.65)));
        let auc = d["value"].as_f64().unwrap();
        assert!(if drifted { auc > 0.9 } else { (0.45..0.65).contains(&auc) }, "{d}");
    }
    // With one tabular feature there is nothing joint to test.
    let one = dir.path().join("one.toml");
    std::fs::write(&one, "include = [\"x\"]\n").unwrap();
    let report = run_json(&[
        "--reference",
        rp.to_str().unwrap(),
        "--current",
        apart.to_str().unwrap(),
        "--config",
        one.to_str().unwrap(),
    ]);
    assert_eq!(report["multivariate"], serde_json::json!([]));
}

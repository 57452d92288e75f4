//! `anchorwatch report` against Evidently 0.7.23 on the very same Parquet pairs: a numerical, a
//! categorical, a text and an embedding column per case.
//!
//! Every directory under `tests/fixtures/report_pair/` is a case: `reference.parquet`,
//! `current.parquet`, the `report.toml` that declares what Evidently's ColumnMapping declares,
//! and `evidently.json`, Evidently's verdicts on those files (written by
//! `analyzer/golden/report_pair.py`). The real binary runs on each, and per column the test, the
//! verdict, the score and the threshold must be Evidently's, as must the dataset's share and
//! verdict. A case is added by adding data to the generator, never code here.

use crate::support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Relative tolerance on scores and thresholds. Every statistic here is computed as Evidently
/// computes it: the exact tests, the text domain classifier and the embedding methods replay
/// Evidently's and scikit-learn's random draws, so only last-bit rounding may differ (sums in
/// another order, Jacobi eigenvectors where scikit-learn calls LAPACK). That holds only where
/// Evidently's own score is insensitive to such rounding, so each embedding entry carries the
/// spread of Evidently's score under 1e-15 relative input noise, and it must be within this
/// tolerance too.
const TOLERANCE: f64 = 1e-9;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report_pair");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn close(ours: f64, theirs: f64) -> bool {
    ours == theirs || (ours - theirs).abs() <= TOLERANCE * ours.abs().max(theirs.abs())
}

fn report(dir: &Path) -> Value {
    let out = Command::new(support::binary())
        .arg("report")
        .arg("--reference")
        .arg(dir.join("reference.parquet"))
        .arg("--current")
        .arg(dir.join("current.parquet"))
        .arg("--config")
        .arg(dir.join("report.toml"))
        .args(["--format", "json", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: anchorwatch report failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", dir.display(), String::from_utf8_lossy(&out.stdout)))
}

/// Compares one case; every difference is pushed onto `failures`.
fn check(dir: &Path, failures: &mut Vec<String>) {
    let case = dir.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(dir.join("evidently.json")).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    let ours = report(dir);
    let mut fail = |what: String| failures.push(format!("{case}: {what}"));

    for side in ["reference", "current"] {
        if ours["rows"][side] != expected["rows"][side] {
            fail(format!("{side} rows {} (Evidently {})", ours["rows"][side], expected["rows"][side]));
        }
    }
    if ours["skipped"].as_array().is_some_and(|s| !s.is_empty()) {
        fail(format!("skipped {}", ours["skipped"]));
    }
    let columns = ours["columns"].as_array().unwrap();
    let names = |cs: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = cs.iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
        v.sort();
        v
    };
    let evidently = expected["columns"].as_array().unwrap();
    if names(columns) != names(evidently) {
        fail(format!("columns {:?} (Evidently {:?})", names(columns), names(evidently)));
    }

    for want in evidently {
        let name = want["name"].as_str().unwrap();
        let Some(got) = columns.iter().find(|c| c["name"] == name) else { continue };
        if let Some(error) = got.get("error") {
            fail(format!("{name}: error {error} (Evidently {} {})", want["stattest"], want["score"]));
            continue;
        }
        for field in ["kind", "stattest", "drifted"] {
            if got[field] != want[field] {
                fail(format!("{name}: {field} {} (Evidently {})", got[field], want[field]));
            }
        }
        for field in ["score", "threshold"] {
            match (got[field].as_f64(), want[field].as_f64()) {
                (Some(g), Some(w)) if close(g, w) => {}
                (g, w) => fail(format!("{name}: {field} {g:?} (Evidently {w:?}, {})", want["stattest"])),
            }
        }
        // A case where Evidently's own score moves beyond the tolerance under input noise of a
        // few ulps cannot be held to it: the generator must not make one.
        if let Some([lo, hi]) = want.get("evidently_spread").and_then(Value::as_array).map(|s| [&s[0], &s[1]]) {
            let (lo, hi) = (lo.as_f64().unwrap(), hi.as_f64().unwrap());
            if !close(lo, hi) {
                fail(format!(
                    "{name}: ill-conditioned, Evidently's own score spans {lo}..{hi} under 1e-15 input noise"
                ));
            }
        }
    }

    let (got, want) = (&ours["dataset_drift"], &expected["dataset_drift"]);
    for field in ["drifted", "drifted_columns", "columns"] {
        if got[field] != want[field] {
            fail(format!("dataset {field} {} (Evidently {})", got[field], want[field]));
        }
    }
    for field in ["share", "threshold"] {
        if !got[field].as_f64().zip(want[field].as_f64()).is_some_and(|(g, w)| close(g, w)) {
            fail(format!("dataset {field} {} (Evidently {})", got[field], want[field]));
        }
    }
}

#[test]
fn every_column_verdict_is_evidentlys() {
    let cases = cases();
    assert!(!cases.is_empty(), "no case under tests/fixtures/report_pair");
    let mut failures = Vec::new();
    for dir in &cases {
        check(dir, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} differences from Evidently over {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

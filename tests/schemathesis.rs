//! schemathesis against `/openapi.json`: requests generated from docs/openapi.json, valid and not,
//! sent to every operation of the real server with the settings of
//! tests/schemathesis/schemathesis.toml (a fixed seed, 30 examples per operation). No request may
//! get a 5xx, in open mode and with tokens (an admin token, so every route is reachable). Answers
//! that do not match docs/openapi.json are printed as conformance findings without failing.
//!
//! No operation is left out. The model `credit` has a champion (an ONNX model made by
//! tests/fixtures/make_models.py, as in tests/predictor.rs), so predict, infer and the readiness
//! probes answer for real: without one they answer 503 `no_champion` by design, which schemathesis
//! would count as a server error. `POST /v1/flush`, analyze, retrain (off by default: 409),
//! uploads, promote and rollback only change this test's own temporary store.
//!
//! Needs schemathesis and the predictor's Python packages in `.venv` (`make test` installs
//! tests/requirements.txt); without them the test prints a skip, except with `CI=true`, where
//! that is a failure.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, client, venv_bin};

/// The admin token of the run with tokens.
const TOKEN: &str = "schemathesis-admin-token-0123456789";

/// Longest one schemathesis run may take before the test kills it and fails.
const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// Failure codes of schemathesis's `not_a_server_error` check: a 5xx answer (ST101), or one to a
/// request with an undeclared `Content-Type` (ST102).
const SERVER_ERROR_CODES: &[&str] = &["ST101", "ST102"];

#[test]
fn no_request_gets_a_server_error_in_open_mode() {
    fuzz("open mode", "", None);
}

#[test]
fn no_request_gets_a_server_error_with_tokens() {
    let auth = format!("[auth]\ntokens = [{{ name = \"fuzz\", token = \"{TOKEN}\", scopes = [\"admin\"] }}]\n");
    fuzz("with tokens", &auth, Some(TOKEN));
}

/// Starts a server with the `credit` model (plus `extra` config), gives it a champion, runs
/// schemathesis against it and fails on any 5xx, network error or crash.
fn fuzz(mode: &str, extra: &str, token: Option<&str>) {
    let Some(schemathesis) = schemathesis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = champion_model(dir.path()) else { return };
    let mut server = Server::start(&support::config(dir.path(), extra));
    promote(&server, model, token);

    // With tokens, a wrong token at `POST /login` is a failed sign-in, and after 10 in a minute
    // the server answers 429 to every request from the address, valid token or not (docs/api.md).
    // Sign-in is therefore fuzzed last, on its own, so the lockout it earns hides nothing else.
    let passes: &[&[&str]] = match token {
        None => &[&[]],
        Some(_) => &[&["--exclude-name", "POST /login"], &["--include-name", "POST /login"]],
    };
    let mut problems = Vec::new();
    for (i, filter) in passes.iter().enumerate() {
        let started = Instant::now();
        let run = run(&schemathesis, &server, token, filter, &dir.path().join(format!("run{i}")));
        println!(
            "--- schemathesis, {mode} {filter:?}, {:.0?} ---\n{}\n--- end of schemathesis ---",
            started.elapsed(),
            run.output
        );
        problems.extend(run.problems(mode));
    }
    if let Some(status) = server.child.try_wait().unwrap() {
        problems.push(format!("anchorwatch exited during the run with {status}"));
    }
    assert!(
        problems.is_empty(),
        "schemathesis ({mode}) found {} problem(s); the reproducing requests are in its output above:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// One failure group of the JSON report, on one line.
fn describe(failure: &Value) -> String {
    format!(
        "{} {} (x{}) on {}",
        failure["code"].as_str().unwrap_or("?"),
        failure["title"].as_str().unwrap_or("?"),
        failure["count"],
        failure["operations"]
    )
}

/// schemathesis from `.venv`; `None` (with a notice) when it is not installed, except under CI,
/// where that fails the test.
fn schemathesis() -> Option<PathBuf> {
    let bin = venv_bin("schemathesis");
    if !bin.exists() {
        support::skip("schemathesis is not in .venv (make test installs tests/requirements.txt)");
        return None;
    }
    Some(bin)
}

/// `credit_v1.onnx` made by tests/fixtures/make_models.py; `None` after a skip.
fn champion_model(dir: &Path) -> Option<Vec<u8>> {
    Some(std::fs::read(support::make_models(dir)?.join("credit_v1.onnx")).unwrap())
}

/// Uploads `model` as version 1 of `credit` and promotes it.
fn promote(server: &Server, model: Vec<u8>, token: Option<&str>) {
    let post = |path: &str| {
        let request = client().post(server.url(path));
        match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    };
    let r = post("/v1/models/credit/versions").header("content-type", "application/octet-stream").body(model).send();
    let r = r.unwrap();
    assert_eq!(r.status().as_u16(), 201, "upload: {}", r.text().unwrap_or_default());
    let r = post("/v1/models/credit/versions/1/promote").send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "promote: {}", r.text().unwrap_or_default());
}

/// What one schemathesis run said: its terminal output and its JSON report.
struct Run {
    output: String,
    report: Value,
}

impl Run {
    /// The server errors, network errors and an unfinished run, one line each; conformance
    /// failures are printed, not returned.
    fn problems(&self, mode: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for f in self.report["failures"].as_array().into_iter().flatten() {
            if f["code"].as_str().is_some_and(|c| SERVER_ERROR_CODES.contains(&c)) {
                problems.push(format!("server error: {}", describe(f)));
            } else {
                println!("CONFORMANCE ({mode}): {}", describe(f));
            }
        }
        for e in self.report["errors"].as_array().into_iter().flatten() {
            problems.push(format!("error: {} (x{})", e["title"].as_str().unwrap_or("?"), e["count"]));
        }
        if self.report["complete"] != Value::Bool(true) {
            problems.push(format!("schemathesis did not finish: stop reason {}", self.report["stop_reason"]));
        }
        problems
    }
}

/// Runs schemathesis against the server's `/openapi.json` on the operations `filter` selects,
/// in `dir` (where it may write).
fn run(schemathesis: &Path, server: &Server, token: Option<&str>, filter: &[&str], dir: &Path) -> Run {
    std::fs::create_dir_all(dir).unwrap();
    let config = support::root().join("tests/schemathesis/schemathesis.toml");
    let report = dir.join("schemathesis.json");
    let log = dir.join("schemathesis.log");
    let mut command = Command::new(schemathesis);
    command
        .current_dir(dir)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &server.url("/openapi.json"), "--no-color", "--report", "json", "--report-json-path"])
        .arg(&report)
        .args(filter);
    if let Some(t) = token {
        command.args(["--header", &format!("Authorization: Bearer {t}")]);
    }
    let out = std::fs::File::create(&log).unwrap();
    let mut child =
        command.stdin(Stdio::null()).stderr(out.try_clone().unwrap()).stdout(out).spawn().expect("start schemathesis");
    let deadline = Instant::now() + RUN_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis did not finish within {RUN_DEADLINE:?}; its output:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let report = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("schemathesis wrote no JSON report; its output:\n{output}"));
    Run { output, report }
}

//! The shipped Prometheus files (`grafana/prometheus/`) pass promtool: the config loads, the
//! alerting rules parse, and their unit tests (`anchorwatch-alerts.test.yml`) hold.
//!
//! promtool comes from Debian's `prometheus` package (`make setup-system` installs it). Without
//! it the tests are skipped locally, and fail under CI (`CI=true`) so a missing tool is never
//! mistaken for passing rules.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;

const DEFAULT_PROMTOOL: &str = "/usr/bin/promtool";

fn prometheus_dir() -> PathBuf {
    support::root().join("grafana").join("prometheus")
}

/// `promtool` on PATH, else Debian's install location.
fn find_promtool() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"));
    on_path.chain([PathBuf::from(DEFAULT_PROMTOOL)]).find(|p| p.is_file())
}

/// The promtool to use, or `None` when the test should be skipped; panics under CI without it.
fn promtool() -> Option<PathBuf> {
    let found = find_promtool();
    if found.is_none() {
        let why = format!(
            "promtool not found on PATH or at {DEFAULT_PROMTOOL}; install Debian's `prometheus` \
             package (`make setup-system`, or `apt-get install --no-install-recommends prometheus`)"
        );
        support::skip(&why);
    }
    found
}

/// Runs `promtool <args>` in `grafana/prometheus/`, asserts success and a `SUCCESS` line, and
/// returns the combined output.
fn run(promtool: &Path, args: &[&str]) -> String {
    let dir = prometheus_dir();
    let out = Command::new(promtool)
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", promtool.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && text.contains("SUCCESS"),
        "`promtool {}` in {} failed ({}):\n{text}",
        args.join(" "),
        dir.display(),
        out.status
    );
    eprintln!("promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn prometheus_config_is_valid() {
    let Some(promtool) = promtool() else { return };
    let text = run(&promtool, &["check", "config", "prometheus.yml"]);
    // The config loads the alerting rules, so they are checked with it.
    assert!(text.contains("anchorwatch-alerts.yml"), "prometheus.yml does not load the rules:\n{text}");
}

#[test]
fn alerting_rules_are_valid() {
    let Some(promtool) = promtool() else { return };
    let text = run(&promtool, &["check", "rules", "anchorwatch-alerts.yml"]);
    assert!(text.contains("SUCCESS: 9 rules found"), "expected the 9 shipped alerts:\n{text}");
}

#[test]
fn alerting_rules_pass_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    run(&promtool, &["test", "rules", "anchorwatch-alerts.test.yml"]);
}

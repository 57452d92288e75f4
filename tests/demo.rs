//! `anchorwatch demo --fast` (what `make demo DEMO_ARGS=--fast` runs), end to end with the real
//! ONNX Runtime: the story's milestones appear in order, with figures that tell it (accuracy
//! falls at the shift and recovers after the promotion), and what it points at exists (the
//! mailbox's messages, the stored predictions).

use crate::support;

use std::process::Command;

/// The number right after `marker` in `text`.
fn figure(text: &str, marker: &str) -> f64 {
    let at = text.find(marker).unwrap_or_else(|| panic!("no `{marker}` in:\n{text}")) + marker.len();
    let digits: String = text[at..].trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after `{marker}` in:\n{text}"))
}

#[test]
fn fast_demo_tells_the_whole_loop_in_order() {
    let Some(ort) = support::onnxruntime() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo");
    let out = Command::new(support::binary())
        .args(["demo", "--fast", "--store", store.to_str().unwrap()])
        .env("ORT_DYLIB_PATH", &ort)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");

    let milestones = [
        "✔ first model: v1 promoted",
        "✔ accuracy before the shift:",
        "The world shifts now",
        "✔ drift detected:",
        "✔ alert firing: CreditDataDrift",
        "webhook received: firing [CreditDataDrift]",
        "mailbox received \"[FIRING:1] credit: CreditDataDrift\"",
        "✔ estimated accuracy",
        "✔ accuracy after the shift:",
        "✔ alert firing: CreditAccuracyDrop",
        "webhook received: firing [CreditDataDrift, CreditAccuracyDrop]",
        "mailbox received \"[FIRING:2] credit: CreditDataDrift, CreditAccuracyDrop\"",
        "✔ retraining run promoted v2",
        "Traffic after the promotion, served by v2",
        "scored by v2",
        "✔ accuracy after the promotion:",
        "Summary",
    ];
    let mut from = 0;
    for m in milestones {
        let at = stdout[from..].find(m).unwrap_or_else(|| panic!("`{m}` missing, or out of order, in:\n{stdout}"));
        from += at + m.len();
    }

    let before = figure(&stdout, "✔ accuracy before the shift:");
    let share = figure(&stdout, "(share ");
    let after = figure(&stdout, "✔ accuracy after the shift:");
    let recovered = figure(&stdout, "✔ accuracy after the promotion:");
    let candidate = figure(&stdout, "same holdout, candidate ");
    let champion = figure(&stdout, "vs champion v1 ");
    assert!(before > 0.8, "v1 before the shift: {before}");
    assert!(share >= 0.5, "drift share at the shift: {share}");
    assert!(after < 0.8 && after < before - 0.1, "the shift costs accuracy: {before} -> {after}");
    assert!(candidate > champion + 0.1, "the candidate wins on the holdout: {candidate} vs {champion}");
    assert!(recovered > after + 0.15 && recovered > 0.8, "accuracy recovers: {after} -> {recovered}");

    // What the narrative points at is there.
    let first = std::fs::read_to_string(store.join("mailbox/001.eml")).unwrap();
    assert!(first.contains("CreditDataDrift") && first.contains("credit-risk-oncall@localhost"), "{first}");
    assert!(!support::parquet_files(&store.join("credit/predictions")).is_empty());
    assert!(store.join("anchorwatch.toml").is_file());
}

#[test]
fn demo_without_onnx_runtime_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(support::binary())
        .args(["demo", "--fast", "--store", dir.path().join("demo").to_str().unwrap()])
        .env("ORT_DYLIB_PATH", dir.path().join("no-such-libonnxruntime.so"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("make setup-onnxruntime") && stderr.contains("ONNX Runtime"), "{stderr}");
}

//! The command line as a user meets it: help, config checking, queries (the demo: tests/demo.rs).

use crate::support;

use std::process::Command;

use serde_json::json;
use support::{Server, binary, config};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary()).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn every_command_has_useful_help() {
    for (command, must_mention) in [
        ("serve", vec!["--config", "--listen", "write-ahead log", "SIGTERM"]),
        ("check-config", vec!["FILE", "field"]),
        ("query", vec!["--model", "--format", "predictions_labeled", "labels_latest"]),
        ("report", vec!["--reference", "--current", "--format", "--output"]),
        ("demo", vec!["--rows", "--serve", "--store"]),
        ("models", vec!["versions", "upload", "promote", "rollback", "docs/models.md"]),
        ("retrain", vec!["--config", "--model", "holdout", "champion"]),
        (
            "compact",
            vec!["--config", "--model", "--min-files", "--min-age", "--grace", "--no-compaction", "one compactor"],
        ),
    ] {
        let (ok, stdout, _) = run(&[command, "--help"]);
        assert!(ok, "{command} --help failed");
        for word in must_mention {
            assert!(stdout.contains(word), "`anchorwatch {command} --help` does not mention {word}:\n{stdout}");
        }
    }
    for (command, must_mention) in [
        ("versions", vec!["--config", "--model", "--json"]),
        ("upload", vec!["--config", "--model", "--promote", "<FILE>", "schema"]),
        ("promote", vec!["--config", "--model", "<VERSION>", "champion"]),
        ("rollback", vec!["--config", "--model", "previous champion"]),
    ] {
        let (ok, stdout, _) = run(&["models", command, "--help"]);
        assert!(ok, "models {command} --help failed");
        for word in must_mention {
            assert!(stdout.contains(word), "`anchorwatch models {command} --help` does not mention {word}:\n{stdout}");
        }
    }
}

#[test]
fn check_config_accepts_the_example_and_names_the_bad_field() {
    let (ok, stdout, stderr) =
        run(&["check-config", concat!(env!("CARGO_MANIFEST_DIR"), "/examples/anchorwatch.toml")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("valid") && stdout.contains("credit"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        ("[server]\nlisen = \"1\"\n", "unknown field `lisen`"),
        ("[collector]\nsync = \"sometimes\"\n", "unknown variant `sometimes`"),
        ("[[models]]\nname = \"a/b\"\nschema.features = [{ name = \"x\", kind = \"numerical\" }]\n", "models[0].name"),
        ("[[models]]\nname = \"m\"\nschema.features = [{ name = \"prediction\", kind = \"numerical\" }]\n", "reserved"),
        ("[[models]]\nname = \"m\"\nschema.infer_from = \"missing.parquet\"\n", "cannot open reference file"),
        (
            "[auth]\ntokens = [{ name = \"t\", token_env = \"ANCHORWATCH_UNSET_VARIABLE\", scopes = [\"read\"] }]\n[[models]]\nname = \"m\"\nschema.features = [{ name = \"x\", kind = \"numerical\" }]\n",
            "ANCHORWATCH_UNSET_VARIABLE is not set",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let (ok, _, stderr) = run(&["check-config", path.to_str().unwrap()]);
        assert!(!ok, "accepted:\n{text}");
        assert!(
            stderr.contains(expected) && stderr.contains("bad.toml"),
            "for\n{text}\nexpected `{expected}` in:\n{stderr}"
        );
    }
}

#[test]
fn query_command_reads_the_store_directly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let server = Server::start(&cfg);
    let rows: Vec<_> = (0..7).map(|i| json!({"prediction_id": format!("q-{i}"), "features": {"age": i, "region": "north", "vip": true}, "prediction": "good"})).collect();
    assert_eq!(server.post_json("/v1/models/credit/predictions", &json!(rows)).0, 200);
    server.stop();
    let cfg = cfg.to_str().unwrap();
    let (ok, stdout, stderr) =
        run(&["query", "--config", cfg, "--format", "json", "SELECT count(*) AS n, sum(age) AS s FROM predictions"]);
    assert!(ok, "{stderr}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap(), json!([{"n": 7, "s": 21.0}]));
    let (ok, stdout, _) = run(&[
        "query",
        "--config",
        cfg,
        "--max-rows",
        "2",
        "SELECT prediction_id FROM predictions ORDER BY prediction_id",
    ]);
    assert!(ok && stdout.contains("q-0") && stdout.contains("q-1") && !stdout.contains("q-2"), "{stdout}");
    let (ok, _, stderr) = run(&["query", "--config", cfg, "DROP TABLE predictions"]);
    assert!(!ok && stderr.contains("read-only"), "{stderr}");
}

/// Every command that works on one model picks it the same way, with the same words: `--model`,
/// or the only one configured; an unknown name or a missing choice names the declared models.
#[test]
fn commands_pick_the_model_alike() {
    let dir = tempfile::tempdir().unwrap();
    let second = "[[models]]\nname = \"fraud\"\n[models.schema]\nprediction = \"numerical\"\nfeatures = [{ name = \"amount\", kind = \"numerical\" }]\n";
    let cfg = config(dir.path(), second);
    let cfg = cfg.to_str().unwrap();
    // (the command, what follows the options)
    let commands: [(&[&str], &[&str]); 4] =
        [(&["query"], &["SELECT 1"]), (&["retrain"], &[]), (&["models", "versions"], &[]), (&["compact"], &[])];
    for (command, rest) in commands {
        let with = |model: &[&str]| run(&[command, &["--config", cfg], model, rest].concat());
        let (ok, _, stderr) = with(&["--model", "nope"]);
        assert!(
            !ok && stderr.contains("--model: `nope` is not declared in")
                && stderr.contains("(declared: credit, fraud)"),
            "{command:?} --model nope: {stderr}"
        );
        // compact without --model works on every model.
        if command != ["compact"] {
            let (ok, _, stderr) = with(&[]);
            assert!(
                !ok && stderr.contains("--model: several models are configured; choose one of credit, fraud"),
                "{command:?} without --model: {stderr}"
            );
        }
    }
}

// The demo is tested end to end in tests/demo.rs.

//! `make demo` after `make test` reuses the test build: the binary `cargo run` builds resolves
//! every dependency with the same features as `cargo test --workspace` does, so no dependency
//! (arrow, parquet, DataFusion) is compiled twice. A dev-dependency that turns on a feature of a
//! shared crate breaks this silently; the root Cargo.toml then names that feature too.

use std::collections::BTreeMap;
use std::process::Command;

use crate::support;

/// Each package's features as `cargo tree` resolves them with `args`: "name version" → features.
fn features(args: &[&str]) -> BTreeMap<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "--prefix", "none", "--format", "{p}|{f}"])
        .args(args)
        .current_dir(support::root())
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (package, features) = line.split_once('|')?;
            // A package seen before is marked " (*)" after its features; a local one has its path.
            let package = package.split(" (").next().unwrap().to_string();
            Some((package, features.trim_end_matches(" (*)").to_string()))
        })
        .collect()
}

#[test]
fn cargo_run_resolves_the_features_of_cargo_test() {
    let run = features(&["--package", "anchorwatch", "--edges", "normal,build"]);
    let test = features(&["--workspace", "--edges", "normal,build,dev"]);
    assert!(run.len() > 100, "cargo tree listed only {} packages", run.len());
    let differ: Vec<String> = run
        .iter()
        .filter_map(|(package, features)| {
            let in_test = test.get(package)?;
            (in_test != features).then(|| format!("{package}: run [{features}], test [{in_test}]"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "`cargo run` and `cargo test` build these with different features, so `make demo` after \
         `make test` compiles them and everything above them again; name the test's features in the \
         root Cargo.toml:\n{}",
        differ.join("\n")
    );
}

//! What the golden tests share: walking a fixtures directory.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Every `*.json` fixture directly in `golden/<dir>` of this crate, parsed, in file-name order;
/// panics when there is none, so a moved directory cannot pass as "nothing to check".
pub fn json_fixtures(dir: &str) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}
